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

Semantics are the file store's (``tests/integration/test_asof_store.py`` compares the two on
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
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
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

from driftloop.features._asof_view import (
    ROW,
    T,
    as_output,
    connect,
    prepare_view,
    read_history,
    source_nulls,
    view_plan,
)

TYPE = "driftloop.features.AsOfOfflineStore"


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
        request = as_of_request(
            config, feature_views, feature_refs, entity_df, registry, project, full_feature_names
        )
        store = config.offline_store

        def evaluate() -> pa.Table:
            return _join(
                entity_df, request.ts_column, request.to_features, full_feature_names,
                request.repo_path, threads=store.threads, memory_limit=store.memory_limit,
            )  # fmt: skip

        return AsOfRetrievalJob(
            evaluate, full_feature_names, request.on_demand_feature_views, request.metadata
        )


@dataclass(frozen=True)
class AsOfRequest:
    """What ``get_historical_features`` with an entity frame asks, resolved."""

    ts_column: str
    to_features: dict[FeatureView, list[str]]
    repo_path: str | None
    on_demand_feature_views: list[OnDemandFeatureView]
    metadata: RetrievalMetadata


def as_of_request(
    config: RepoConfig,
    feature_views: list[FeatureView],
    feature_refs: list[str],
    entity_df: pd.DataFrame,
    registry: BaseRegistry,
    project: str,
    full_feature_names: bool,
) -> AsOfRequest:
    for view in feature_views:
        if not isinstance(view.batch_source, FileSource):
            raise ValueError(f"{view.name}: the as-of store reads FileSources only")
    ts_column = _timestamp_column(entity_df)
    odfvs = _get_requested_on_demand_feature_views(feature_refs, project, registry)
    to_features, _ = _get_requested_feature_views_to_features_dict(
        feature_refs, feature_views, odfvs
    )
    stamps = pd.to_datetime(entity_df[ts_column], utc=True)
    return AsOfRequest(
        ts_column=ts_column,
        to_features=to_features,
        repo_path=str(config.repo_path) if config.repo_path else None,
        on_demand_feature_views=OnDemandFeatureView.get_requested_odfvs(
            feature_refs, project, registry
        ),
        metadata=RetrievalMetadata(
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


def entity_table(entity_df: pd.DataFrame, ts_column: str) -> pa.Table:
    """The entity rows as the output's first columns (the timestamp as UTC nanoseconds),
    with a row number ``__asof_row`` and the time ``__asof_t`` as int64 nanoseconds."""
    entity = entity_df.reset_index(drop=True)
    entity[ts_column] = pd.to_datetime(entity[ts_column], utc=True).dt.as_unit("ns")
    stamps = entity[ts_column].to_numpy(dtype="datetime64[ns]").view(np.int64)
    out = pa.Table.from_pandas(entity, preserve_index=False)
    out = out.append_column(ROW, pa.array(np.arange(len(entity), dtype=np.int64)))
    return out.append_column(T, pa.array(stamps))


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
    entity = entity_table(entity_df, ts_column)
    left: dict[str, Any] = {ROW: entity.column(ROW), T: entity.column(T)}
    connection = connect(threads, memory_limit)
    selects: list[str] = []
    joins: list[str] = []
    names: list[str] = []
    keep: list[pa.Table] = []  # registered tables must outlive the query
    nulls: list[bool] = []
    for v, (view, features) in enumerate(to_features.items()):
        plan = view_plan(view, features, full_feature_names, repo_path)
        history = read_history(plan)
        for i, key in enumerate(plan.entity_keys):
            left[f"v{v}k{i}"] = entity.column(key)
        keep.append(history)
        join, view_selects = prepare_view(connection, plan, v, history, len(names))
        joins.append(join)
        selects.extend(view_selects)
        names.extend(plan.names)
        nulls.extend(source_nulls(history, len(features)))
    connection.register("e", pa.table(left))
    columns = ", ".join(selects) or f"e.{ROW}"
    query = f"SELECT {columns} FROM e {' '.join(joins)} ORDER BY e.{ROW}"  # noqa: S608
    joined = connection.sql(query).to_arrow_table()
    connection.close()
    out = entity.drop_columns([ROW, T])
    for i, name in enumerate(names):
        out = out.append_column(name, as_output(joined.column(f"o{i}"), nulls[i]))
    return out
