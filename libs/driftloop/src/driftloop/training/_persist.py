"""A built dataset written to a directory or URI and read back unchanged, so that the
steps of a retraining workflow (which may run on different machines) hand it over.

Layout: ``dataset.json`` (features, vocabularies, hash, counts) and, per split,
``<split>.parquet`` (encoded) and ``<split>.raw.parquet`` (before encoding). A set built
on Ray (``_sharded``) also has its parts under ``train/`` and ``validation/`` (and
``holdout/``), written there by the build's tasks, and ``train.parquet`` holds its
sample of train."""

from __future__ import annotations

import contextlib
import json
from datetime import datetime

import pandas as pd

from driftloop.models import Feature
from driftloop.training._dataset import SPLITS, TIME_SPLIT, Dataset, frame_hash


def _fs(uri: str) -> tuple[object, str]:
    from pyarrow import fs

    if "://" not in uri:
        from pathlib import Path

        uri = Path(uri).expanduser().absolute().as_uri()
    return fs.FileSystem.from_uri(uri)  # type: ignore[no-any-return]


def write_bytes(uri: str, data: bytes) -> None:
    """Write ``data`` to ``uri`` (a path or a filesystem URI), creating its directory."""
    filesystem, path = _fs(uri)
    filesystem.create_dir(path.rsplit("/", 1)[0], recursive=True)  # type: ignore[attr-defined]
    with filesystem.open_output_stream(path) as out:  # type: ignore[attr-defined]
        out.write(data)


def read_bytes(uri: str) -> bytes:
    filesystem, path = _fs(uri)
    with filesystem.open_input_stream(path) as stream:  # type: ignore[attr-defined]
        data: bytes = stream.read()
    return data


def delete_tree(uri: str) -> None:
    """Delete the directory at ``uri`` (a path or a filesystem URI) if it exists."""
    filesystem, path = _fs(uri)
    with contextlib.suppress(FileNotFoundError):
        filesystem.delete_dir(path)  # type: ignore[attr-defined]


def save_dataset(dataset: Dataset, uri: str) -> None:
    import io

    root = uri.rstrip("/")
    for name in SPLITS:
        for suffix, frame in (("", dataset.splits[name]), (".raw", dataset.raw[name])):
            buffer = io.BytesIO()
            frame.to_parquet(buffer, index=False)
            write_bytes(f"{root}/{name}{suffix}.parquet", buffer.getvalue())
    header = {
        "features": [f.model_dump() for f in dataset.features],
        "vocabularies": dataset.vocabularies,
        "data_hash": dataset.data_hash,
        "labelled_rows": dataset.labelled_rows,
        "change_point": dataset.change_point.isoformat() if dataset.change_point else None,
        "strategy": dataset.strategy,
        "served_rows": dataset.served_rows,
        "shards": dataset.shards,
        "totals": dataset.totals,
        # A sharded set holds a sample of train here: what is saved hashes to this.
        "held_hash": frame_hash(dataset.splits),
    }
    # Written last: a dataset without its header is incomplete and never read.
    write_bytes(f"{root}/dataset.json", json.dumps(header, indent=2).encode())


def load_dataset(uri: str) -> Dataset:
    """Read a saved dataset; its data hash is recomputed and must match the header (for a
    sharded set, the hash of the splits saved here: its train parts stay where they are
    and only the workers read them)."""
    import io

    root = uri.rstrip("/")
    header = json.loads(read_bytes(f"{root}/dataset.json"))
    splits = {n: pd.read_parquet(io.BytesIO(read_bytes(f"{root}/{n}.parquet"))) for n in SPLITS}
    raw = {n: pd.read_parquet(io.BytesIO(read_bytes(f"{root}/{n}.raw.parquet"))) for n in SPLITS}
    expected = header["held_hash"] if header.get("shards") else header["data_hash"]
    if frame_hash(splits) != expected:
        raise ValueError(f"{root}: the data does not hash to {expected}")
    return Dataset(
        features=[Feature.model_validate(f) for f in header["features"]],
        vocabularies=header["vocabularies"],
        splits=splits,
        data_hash=header["data_hash"],
        raw=raw,
        labelled_rows=int(header["labelled_rows"]),
        change_point=datetime.fromisoformat(cp) if (cp := header.get("change_point")) else None,
        strategy=header.get("strategy", TIME_SPLIT),
        served_rows=header.get("served_rows"),
        shards=header.get("shards"),
        totals=header.get("totals"),
    )
