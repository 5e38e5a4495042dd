"""One feature view's part of the as-of join, shared by the local and the partitioned
store: where its history is and how it is read, the DuckDB statements that join it, the
hash that assigns its keys to a partition, and the dtype rule for its output columns."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import timedelta

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
from feast import FeatureView
from feast.infra.offline_stores.file_source import FileSource

ROW = "__asof_row"
T = "__asof_t"
C = "__asof_c"


@dataclass(frozen=True)
class ViewPlan:
    """What a join needs of one view: plain values, so a plan travels to a Ray task."""

    uri: str
    s3_endpoint_override: str
    columns: list[str]
    """The source columns read: keys, event timestamp, [created], features."""
    keys: int
    has_created: bool
    entity_keys: list[str]
    """The entity-frame column each key is matched with."""
    ttl_ns: int
    names: list[str]
    """The output name of each feature (``view__feature`` with full feature names)."""


def view_plan(
    view: FeatureView, features: list[str], full_feature_names: bool, repo_path: str | None
) -> ViewPlan:
    source = view.batch_source
    if not isinstance(source, FileSource):
        raise ValueError(f"{view.name}: the as-of store reads FileSources only")
    to_source = {feast: raw for raw, feast in (source.field_mapping or {}).items()}
    keys = [column.name for column in view.entity_columns]
    created = source.created_timestamp_column
    wanted = [*keys, source.timestamp_field, *([created] if created else []), *features]
    view_name: str = view.projection.name_to_use()  # type: ignore[no-untyped-call]
    prefix = f"{view_name}__" if full_feature_names else ""
    return ViewPlan(
        uri=FileSource.get_uri_for_file_path(repo_path=repo_path, uri=source.file_options.uri),
        s3_endpoint_override=source.file_options.s3_endpoint_override,
        columns=[to_source.get(name, name) for name in wanted],
        keys=len(keys),
        has_created=bool(created),
        entity_keys=[view.projection.join_key_map.get(key, key) for key in keys],
        ttl_ns=(view.ttl // timedelta(microseconds=1)) * 1000 if view.ttl else 0,
        names=[prefix + feature for feature in features],
    )


def epoch_ns(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Timestamps as int64 nanoseconds since the epoch (naive ones read as UTC), so the
    join compares exactly what pandas compares, whatever unit the files were written in."""
    tz = getattr(column.type, "tz", None)
    return pc.cast(pc.cast(column, pa.timestamp("ns", tz=tz)), pa.int64())


def _canonical(plan: ViewPlan, table: pa.Table) -> pa.Table:
    """Source columns as (k0.., __asof_t, [__asof_c], f0..)."""
    columns = [table.column(i) for i in range(plan.keys)]
    names = [f"k{i}" for i in range(plan.keys)]
    columns.append(epoch_ns(table.column(plan.keys)))
    names.append(T)
    if plan.has_created:
        columns.append(epoch_ns(table.column(plan.keys + 1)))
        names.append(C)
    features = len(plan.names)
    columns.extend(table.column(i) for i in range(len(plan.columns) - features, len(plan.columns)))
    names.extend(f"f{i}" for i in range(features))
    return pa.Table.from_arrays(columns, names=names)


def _dataset(plan: ViewPlan) -> pads.Dataset:
    """The view's source files, found as the file store finds them (hidden and ``_``
    files skipped)."""
    filesystem, path = FileSource.create_filesystem_and_path(plan.uri, plan.s3_endpoint_override)
    return pads.dataset(path, filesystem=filesystem, format="parquet")


def read_history(plan: ViewPlan) -> pa.Table:
    """The view's source as (k0.., __asof_t, [__asof_c], f0..)."""
    return _canonical(plan, _dataset(plan).to_table(columns=plan.columns))


def read_history_share(plan: ViewPlan, reader: int, readers: int) -> pa.Table:
    """Reader ``reader``'s share of the view's source: every ``readers``-th row group of
    its files, as ``read_history`` gives them."""
    dataset = _dataset(plan)
    groups = [group for fragment in dataset.get_fragments()
              for group in fragment.split_by_row_group()]  # fmt: skip
    # read as the dataset's schema, as ``read_history``'s whole-dataset read does
    mine = [group.to_table(schema=dataset.schema, columns=plan.columns)
            for group in groups[reader::readers]]  # fmt: skip
    empty = dataset.schema.empty_table().select(plan.columns)
    return _canonical(plan, pa.concat_tables([empty, *mine]))


def connect(threads: int | None, memory_limit: str | None) -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect(config={"threads": threads} if threads else {})
    if memory_limit:
        connection.execute(f"SET memory_limit = '{memory_limit}'")
    return connection


@functools.cache
def _database(threads: int | None, memory_limit: str | None) -> duckdb.DuckDBPyConnection:
    return connect(threads, memory_limit)


def task_connection(threads: int | None, memory_limit: str | None) -> duckdb.DuckDBPyConnection:
    """A new connection to this process's in-memory database of these settings, opened on
    first use and kept: opening a database takes about 0.1 s, a connection to it (with its
    own registrations and temporary views) a few ms, and a process runs many tasks."""
    return _database(threads, memory_limit).cursor()


def partition_of(
    table: pa.Table,
    columns: list[str],
    partitions: int,
    connection: duckdb.DuckDBPyConnection | None = None,
) -> np.ndarray:
    """The partition of each row: a hash of its key columns modulo ``partitions``. Numbers
    are hashed as doubles and everything else as text, so a key hashes alike in the entity
    rows and the history whatever its integer width, float or string type; a null key
    hashes to a fixed partition (it matches nothing there, as in the local join)."""
    if partitions == 1 or not table.num_rows:
        return np.zeros(table.num_rows, dtype=np.int64)
    keys = pa.Table.from_arrays([table.column(c) for c in columns],
                                names=[f"k{i}" for i in range(len(columns))])  # fmt: skip
    numeric = (pa.types.is_integer, pa.types.is_floating, pa.types.is_decimal,
               pa.types.is_boolean)  # fmt: skip
    casts = [
        f"CAST(k{i} AS {'DOUBLE' if any(is_(field.type) for is_ in numeric) else 'VARCHAR'})"
        for i, field in enumerate(keys.schema)
    ]
    own = connection is None
    connection = task_connection(None, None) if connection is None else connection
    connection.register("__asof_keys", keys)
    # Generated names only; DuckDB keeps the scan's row order without ORDER BY.
    query = f"SELECT (hash({', '.join(casts)}) % {partitions})::BIGINT AS p FROM __asof_keys"  # noqa: S608
    found: np.ndarray = connection.sql(query).fetchnumpy()["p"]
    connection.unregister("__asof_keys")
    if own:
        connection.close()
    return np.asarray(found, dtype=np.int64)


def prepare_view(
    connection: duckdb.DuckDBPyConnection, plan: ViewPlan, v: int, history: pa.Table, first: int
) -> tuple[str, list[str]]:
    """Register the history as view ``h{v}`` (one row per keys and timestamp: the latest
    ``created`` wins) and return its ``ASOF LEFT JOIN`` clause against entity rows ``e``
    (keys ``e.v{v}k{i}``, time ``e.__asof_t``) and its feature selects ``o{first}``...
    ``history`` must outlive the query."""
    ordered = f"ORDER BY {C} DESC NULLS LAST" if plan.has_created else ""
    keys = ", ".join(f"k{i}" for i in range(plan.keys))
    connection.register(f"raw{v}", history)
    # Every name in these statements is generated here: nothing user-supplied.
    connection.execute(
        f"CREATE TEMP VIEW h{v} AS SELECT * FROM raw{v} WHERE {T} IS NOT NULL "  # noqa: S608
        f"QUALIFY row_number() OVER (PARTITION BY {keys}, {T} {ordered}) = 1"
    )
    on = " AND ".join(f"e.v{v}k{i} = h{v}.k{i}" for i in range(plan.keys))
    join = f"ASOF LEFT JOIN h{v} ON {on} AND e.{T} >= h{v}.{T}"
    fresh = f"h{v}.{T} >= e.{T} - {plan.ttl_ns}" if plan.ttl_ns else "true"
    selects = [f"CASE WHEN {fresh} THEN h{v}.f{f} END AS o{first + f}"
               for f in range(len(plan.names))]  # fmt: skip
    return join, selects


def source_nulls(history: pa.Table, features: int) -> list[bool]:
    return [history.column(f"f{f}").null_count > 0 for f in range(features)]


def as_output(column: pa.ChunkedArray, nulls: bool) -> pa.ChunkedArray:
    """What pandas makes of an integer column with nulls, in the output or the files:
    float64 (``nulls``: the files had some)."""
    if pa.types.is_integer(column.type) and (column.null_count or nulls):
        return column.cast(pa.float64())
    return column
