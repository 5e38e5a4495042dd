"""An as-of offline store for Feast: the point-in-time join as one DuckDB ``ASOF JOIN``.

Feast's file (dask) store joins every entity row with every history row of its key and
then filters by time, so its work and memory grow with (rows asked) x (history per key).
An as-of join sorts both sides once and walks them together: for each entity row, the
latest history row of its keys at or before its timestamp.

Named in ``feature_store.yaml`` as ``offline_store: {type:
driftloop.features.AsOfOfflineStore}``. Only ``get_historical_features`` with an entity
frame is ours; everything else — materialization (``pull_latest_from_table_or_query``),
``pull_all_from_table_or_query``, writes, logging, retrieval without an entity frame — is
the file store's own code, inherited, on the same ``FileSource`` directories.

Semantics are the file store's (``tests/unit/test_asof_store.py`` compares the two on
random data, row for row and dtype for dtype):

- a feature row stamped ``t`` is visible to an entity row at ``t`` (inclusive), and not
  when ``t < ts - ttl`` (a TTL of zero or none: no lower bound);
- among rows of one key with the same event timestamp, the latest ``created`` wins;
- an entity row without history keeps its place, with nulls;
- integer features with nulls come back as floats, timestamps as ``datetime64[ns, UTC]``.

Where it differs, on purpose: every entity row comes back, once per input row and in
input order. The file store orders rows by feature timestamp and drops entity rows that
share the join keys and timestamp of another row. Entity rows whose join key is null
get nulls here (pandas would match null keys with null keys).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any, Literal

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
from feast import FeatureView
from feast.infra.offline_stores.dask import DaskOfflineStore, DaskOfflineStoreConfig
from feast.infra.offline_stores.file_source import FileSource
from feast.infra.offline_stores.offline_store import RetrievalJob, RetrievalMetadata
from feast.infra.offline_stores.offline_utils import DEFAULT_ENTITY_DF_EVENT_TIMESTAMP_COL
from feast.infra.registry.base_registry import BaseRegistry
from feast.on_demand_feature_view import OnDemandFeatureView
from feast.repo_config import RepoConfig
from feast.utils import (
    _get_requested_feature_views_to_features_dict,
    _get_requested_on_demand_feature_views,
)

TYPE = "driftloop.features.AsOfOfflineStore"
_ROW = "__asof_row"
_T = "__asof_t"
_C = "__asof_c"


class AsOfOfflineStoreConfig(DaskOfflineStoreConfig):
    """The as-of store's settings. A file store's config too, because the file store's
    inherited methods (materialization among them) check that they get one."""

    type: Literal["driftloop.features.AsOfOfflineStore"] = TYPE  # type: ignore[assignment]
    threads: int | None = None
    """DuckDB's worker threads; ``None``: one per core."""
    memory_limit: str | None = None
    """DuckDB's memory limit (``"2GB"``), beyond which it spills; ``None``: its default."""


class AsOfRetrievalJob(RetrievalJob):
    """A lazy join: nothing is read until ``to_df``/``to_arrow``. On-demand views are
    applied by Feast's ``RetrievalJob.to_arrow`` from ``on_demand_feature_views``, as for
    the file store."""

    def __init__(
        self,
        evaluate: Callable[[], pa.Table],
        full_feature_names: bool,
        on_demand_feature_views: list[OnDemandFeatureView],
        metadata: RetrievalMetadata,
    ) -> None:
        self._evaluate = evaluate
        self._full_feature_names = full_feature_names
        self._on_demand_feature_views = on_demand_feature_views
        self._metadata = metadata

    @property
    def full_feature_names(self) -> bool:
        return self._full_feature_names

    @property
    def on_demand_feature_views(self) -> list[OnDemandFeatureView]:
        return self._on_demand_feature_views

    @property
    def metadata(self) -> RetrievalMetadata:
        return self._metadata

    def _to_df_internal(self, timeout: int | None = None) -> pd.DataFrame:
        frame: pd.DataFrame = self._evaluate().to_pandas()
        return frame

    def _to_arrow_internal(self, timeout: int | None = None) -> pa.Table:
        return self._evaluate()

    def supports_remote_storage_export(self) -> bool:
        return False


class AsOfOfflineStore(DaskOfflineStore):
    """Feast's file store with its point-in-time join replaced by an as-of join."""

    supports_filter_by_created_timestamp = False

    @staticmethod
    def get_historical_features(  # type: ignore[override]
        config: RepoConfig,
        feature_views: list[FeatureView],
        feature_refs: list[str],
        entity_df: pd.DataFrame | str | None,
        registry: BaseRegistry,
        project: str,
        full_feature_names: bool = False,
        **kwargs: Any,
    ) -> RetrievalJob:
        assert isinstance(config.offline_store, AsOfOfflineStoreConfig)
        if not isinstance(entity_df, pd.DataFrame):
            # Retrieval without entity rows (a snapshot of every entity) and the error for
            # SQL entity frames: the file store's.
            return DaskOfflineStore.get_historical_features(
                config, feature_views, feature_refs, entity_df, registry, project,
                full_feature_names, **kwargs,
            )  # fmt: skip
        for view in feature_views:
            if not isinstance(view.batch_source, FileSource):
                raise ValueError(f"{view.name}: the as-of store reads FileSources only")
        ts_column = _timestamp_column(entity_df)
        odfvs = _get_requested_on_demand_feature_views(feature_refs, project, registry)
        to_features, _ = _get_requested_feature_views_to_features_dict(
            feature_refs, feature_views, odfvs
        )
        store = config.offline_store
        repo_path = str(config.repo_path) if config.repo_path else None
        stamps = pd.to_datetime(entity_df[ts_column], utc=True)

        def evaluate() -> pa.Table:
            return _join(
                entity_df, ts_column, to_features, full_feature_names, repo_path,
                threads=store.threads, memory_limit=store.memory_limit,
            )  # fmt: skip

        return AsOfRetrievalJob(
            evaluate,
            full_feature_names,
            OnDemandFeatureView.get_requested_odfvs(feature_refs, project, registry),
            RetrievalMetadata(
                features=feature_refs,
                keys=list(set(entity_df.columns) - {ts_column}),
                min_event_timestamp=stamps.min().to_pydatetime(),
                max_event_timestamp=stamps.max().to_pydatetime(),
            ),
        )


def _timestamp_column(entity_df: pd.DataFrame) -> str:
    """``event_timestamp``, else the frame's only datetime column (the file store's rule)."""
    if DEFAULT_ENTITY_DF_EVENT_TIMESTAMP_COL in entity_df.columns:
        return DEFAULT_ENTITY_DF_EVENT_TIMESTAMP_COL
    found = entity_df.select_dtypes(include=["datetime", "datetimetz"]).columns
    if len(found) == 1:
        return str(found[0])
    raise ValueError(
        f"Please provide an entity_df with a column named "
        f"{DEFAULT_ENTITY_DF_EVENT_TIMESTAMP_COL} representing the time of events."
    )


def _epoch_ns(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Timestamps as int64 nanoseconds since the epoch (naive ones read as UTC), so the
    join compares exactly what pandas compares, whatever unit the files were written in."""
    tz = getattr(column.type, "tz", None)
    return pc.cast(pc.cast(column, pa.timestamp("ns", tz=tz)), pa.int64())


def _history(view: FeatureView, features: list[str], repo_path: str | None) -> tuple[
    pa.Table, list[str]
]:  # fmt: skip
    """The view's source as (keys..., __asof_t, [__asof_c], features...), read with the
    same file discovery as the file store (hidden and ``_`` files skipped); and the
    entity-frame column each key is matched with."""
    source = view.batch_source
    assert isinstance(source, FileSource)
    to_source = {feast: raw for raw, feast in (source.field_mapping or {}).items()}
    uri = FileSource.get_uri_for_file_path(repo_path=repo_path, uri=source.file_options.uri)
    filesystem, path = FileSource.create_filesystem_and_path(
        str(uri), source.file_options.s3_endpoint_override
    )
    keys = [column.name for column in view.entity_columns]
    entity_keys = [view.projection.join_key_map.get(key, key) for key in keys]
    created = source.created_timestamp_column
    wanted = [*keys, source.timestamp_field, *([created] if created else []), *features]
    raw = pads.dataset(path, filesystem=filesystem, format="parquet")
    table = raw.to_table(columns=[to_source.get(name, name) for name in wanted])
    columns = [table.column(i) for i in range(len(keys))]
    names = [f"k{i}" for i in range(len(keys))]
    columns.append(_epoch_ns(table.column(len(keys))))
    names.append(_T)
    if created:
        columns.append(_epoch_ns(table.column(len(keys) + 1)))
        names.append(_C)
    columns.extend(table.column(i) for i in range(len(wanted) - len(features), len(wanted)))
    names.extend(f"f{i}" for i in range(len(features)))
    return pa.Table.from_arrays(columns, names=names), entity_keys


def _join(
    entity_df: pd.DataFrame,
    ts_column: str,
    to_features: dict[FeatureView, list[str]],
    full_feature_names: bool,
    repo_path: str | None,
    *,
    threads: int | None,
    memory_limit: str | None,
) -> pa.Table:
    """The entity rows, in order, with each view's features as of each row's timestamp."""
    entity = entity_df.reset_index(drop=True)
    entity[ts_column] = pd.to_datetime(entity[ts_column], utc=True).dt.as_unit("ns")
    stamps = entity[ts_column].to_numpy(dtype="datetime64[ns]").view(np.int64)
    left: dict[str, Any] = {_ROW: np.arange(len(entity), dtype=np.int64), _T: stamps}
    connection = duckdb.connect(config={"threads": threads} if threads else {})
    if memory_limit:
        connection.execute(f"SET memory_limit = '{memory_limit}'")
    selects: list[str] = []
    joins: list[str] = []
    names: list[str] = []
    keep: list[pa.Table] = []
    source_nulls: list[bool] = []
    for v, (view, features) in enumerate(to_features.items()):
        history, entity_keys = _history(view, features, repo_path)
        for i, key in enumerate(entity_keys):
            left[f"v{v}k{i}"] = entity[key]
        # One row per (keys, timestamp): the latest created wins the tie.
        ordered = f"ORDER BY {_C} DESC NULLS LAST" if _C in history.column_names else ""
        keys = ", ".join(f"k{i}" for i in range(len(entity_keys)))
        keep.append(history)  # registered tables must outlive the query
        connection.register(f"raw{v}", history)
        # Every name in these statements is generated here: nothing user-supplied.
        connection.execute(
            f"CREATE TEMP VIEW h{v} AS SELECT * FROM raw{v} WHERE {_T} IS NOT NULL "  # noqa: S608
            f"QUALIFY row_number() OVER (PARTITION BY {keys}, {_T} {ordered}) = 1"
        )
        on = " AND ".join(f"e.v{v}k{i} = h{v}.k{i}" for i in range(len(entity_keys)))
        joins.append(f"ASOF LEFT JOIN h{v} ON {on} AND e.{_T} >= h{v}.{_T}")
        ttl_ns = (view.ttl // timedelta(microseconds=1)) * 1000 if view.ttl else 0
        fresh = f"h{v}.{_T} >= e.{_T} - {ttl_ns}" if ttl_ns else "true"
        view_name: str = view.projection.name_to_use()  # type: ignore[no-untyped-call]
        prefix = f"{view_name}__" if full_feature_names else ""
        for f, feature in enumerate(features):
            selects.append(f"CASE WHEN {fresh} THEN h{v}.f{f} END AS o{len(names)}")
            names.append(prefix + feature)
            source_nulls.append(history.column(f"f{f}").null_count > 0)
    connection.register("e", pa.Table.from_pandas(pd.DataFrame(left), preserve_index=False))
    columns = ", ".join(selects) or f"e.{_ROW}"
    query = f"SELECT {columns} FROM e {' '.join(joins)} ORDER BY e.{_ROW}"  # noqa: S608
    joined = connection.sql(query).to_arrow_table()
    connection.close()
    out = pa.Table.from_pandas(entity, preserve_index=False)
    for i, name in enumerate(names):
        column = joined.column(f"o{i}")
        if pa.types.is_integer(column.type) and (column.null_count or source_nulls[i]):
            # What pandas makes of an integer column with nulls, in the output or the files.
            column = column.cast(pa.float64())
        out = out.append_column(name, column)
    return out
