"""Appending to a batch source: immutable parquet files, each written atomically.

A batch source here is a directory of parquet files that both of Feast's offline stores
read. Each write is a new file, renamed into place once complete, so readers never see a
half-written file and a replay that rewrites the same name replaces, not duplicates.
"""

from __future__ import annotations

import uuid

import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq


def _filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    if "://" in uri:
        return pafs.FileSystem.from_uri(uri)  # type: ignore[no-any-return]
    return pafs.LocalFileSystem(), uri


def write_batch(
    frame: pd.DataFrame, directory: str, name: str, schema: pa.Schema | None = None
) -> str:
    """Write ``frame`` as ``<directory>/<name>.parquet`` atomically; return its path.

    With ``schema`` every file of a source has the same column types, even a file with no
    rows (where pandas cannot tell a string column from a null one)."""
    fs, base = _filesystem(directory)
    fs.create_dir(base, recursive=True)
    final = f"{base}/{name}.parquet"
    temp = f"{base}/.{name}.{uuid.uuid4().hex}.tmp"  # a leading '.' hides it from readers
    table = pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
    with fs.open_output_stream(temp) as sink:
        pq.write_table(table, sink)
    fs.move(temp, final)
    return final


def list_batches(directory: str) -> list[str]:
    """Names (without ``.parquet``) of the files in a batch source directory."""
    fs, base = _filesystem(directory)
    selector = pafs.FileSelector(base, allow_not_found=True)
    return sorted(
        info.base_name.removesuffix(".parquet")
        for info in fs.get_file_info(selector)
        if info.base_name.endswith(".parquet") and not info.base_name.startswith((".", "_"))
    )


def delete_batch(directory: str, name: str) -> None:
    fs, base = _filesystem(directory)
    fs.delete_file(f"{base}/{name}.parquet")


def read_source(directory: str) -> pd.DataFrame:
    """Every row of a batch source directory (for tests and reports)."""
    fs, base = _filesystem(directory)
    frame: pd.DataFrame = pq.read_table(base, filesystem=fs).to_pandas()
    return frame
