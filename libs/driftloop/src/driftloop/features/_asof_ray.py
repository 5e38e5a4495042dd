"""The as-of store on Ray: the same join partitioned by a hash of the entity keys, each
partition joined by DuckDB in a Ray task, the answer a Ray Dataset of the partitions.

Named in ``feature_store.yaml`` as ``offline_store: {type:
driftloop.features.RayAsOfOfflineStore, partitions: 4, ray_address: ...}``. The answer is
the local as-of store's, row for row and dtype for dtype (``tests/unit/test_asof_parts.py``
in process, ``tests/integration/test_asof_ray.py`` on the cluster); the plan is
``driftloop.features._asof_parts``. Everything but ``get_historical_features`` with an
entity frame (materialization among it) is the file store's, inherited as by the local
store, and runs in the calling process. ``to_df``/``to_arrow`` gather the partitions in
input order on the caller; ``to_partitions`` and ``to_ray_dataset`` leave them in the
cluster.

Ray is connected to (``ray_address``) when a job is evaluated, not before; a process that
talks to a token-protected cluster enables token auth first (``open_store`` does)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd
from feast import FeatureView
from feast.infra.offline_stores.offline_store import RetrievalJob, RetrievalMetadata
from feast.infra.registry.base_registry import BaseRegistry
from feast.on_demand_feature_view import OnDemandFeatureView
from feast.repo_config import RepoConfig
from pydantic import Field

from driftloop.features._asof import (
    AsOfOfflineStore,
    AsOfOfflineStoreConfig,
    AsOfRetrievalJob,
    as_of_request,
    entity_table,
)
from driftloop.features._asof_parts import JoinPlan, Partitioned, Runner, collect, run
from driftloop.features._asof_view import view_plan

if TYPE_CHECKING:
    import ray.data

RAY_TYPE = "driftloop.features.RayAsOfOfflineStore"


class RayAsOfOfflineStoreConfig(AsOfOfflineStoreConfig):
    """The partitioned store's settings; ``threads`` and ``memory_limit`` are DuckDB's
    in each task (``threads`` is also the CPUs a task asks Ray for, 1 if unset)."""

    type: Literal["driftloop.features.RayAsOfOfflineStore"] = RAY_TYPE  # type: ignore[assignment]
    partitions: int = Field(default=4, ge=1)
    """Partitions of the entity keys: tasks per view, and blocks of the answer."""
    ray_address: str | None = None
    """The cluster to connect to (``ray.init(address=...)``); ``None``: Ray's default."""


class RayRunner:
    """``_asof_parts.Runner`` on Ray: each function a Ray task."""

    def __init__(self, num_cpus: float) -> None:
        self._num_cpus = num_cpus
        self._remote: dict[Callable[..., Any], Any] = {}

    def put(self, value: Any) -> Any:
        import ray

        return ray.put(value)

    def submit(self, fn: Callable[..., Any], *args: Any, num_returns: int = 1) -> list[Any]:
        import ray

        if fn not in self._remote:
            self._remote[fn] = ray.remote(fn)
        task = self._remote[fn].options(num_returns=num_returns, num_cpus=self._num_cpus)
        refs = task.remote(*args)
        return list(refs) if num_returns > 1 else [refs]

    def get(self, handles: Sequence[Any]) -> list[Any]:
        import ray

        return list(ray.get(list(handles)))


def _connect(address: str | None) -> None:
    import ray

    if not ray.is_initialized():
        ray.init(address=address, log_to_driver=False)


class RayAsOfRetrievalJob(AsOfRetrievalJob):
    """A lazy partitioned join: each ``to_df``/``to_arrow``/``to_ray_dataset`` runs it."""

    def __init__(
        self,
        start: Callable[[], tuple[Partitioned, Runner]],
        partition_keys: list[str],
        full_feature_names: bool,
        on_demand_feature_views: list[OnDemandFeatureView],
        metadata: RetrievalMetadata,
    ) -> None:
        super().__init__(
            lambda: collect(*start()), full_feature_names, on_demand_feature_views, metadata
        )
        self._start = start
        self.partition_keys = partition_keys
        """The entity columns whose hash places a row in a block of ``to_ray_dataset``."""

    def to_partitions(self) -> Partitioned:
        """The answer left in the cluster, nothing gathered here: per partition, an object
        reference to its block (the rows whose keys of the last view hash to it, in input
        order) and one to the input position of each of its rows. On-demand views are not
        applied (``to_df`` applies them; the training set's build does, per block)."""
        result, _ = self._start()
        return result

    def to_ray_dataset(self) -> ray.data.Dataset:
        """The blocks of :meth:`to_partitions` as a Ray Dataset (one block per partition);
        refused when the request has on-demand views, which it would leave out."""
        import ray.data

        if self.on_demand_feature_views:
            names = [view.name for view in self.on_demand_feature_views]
            raise ValueError(f"to_ray_dataset does not compute on-demand views ({names})")
        return ray.data.from_arrow_refs(self.to_partitions().blocks)


class RayAsOfOfflineStore(AsOfOfflineStore):
    """The as-of store with its join partitioned over Ray tasks."""

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
        store = config.offline_store
        assert isinstance(store, RayAsOfOfflineStoreConfig)
        if not isinstance(entity_df, pd.DataFrame):
            return AsOfOfflineStore.get_historical_features(
                config, feature_views, feature_refs, entity_df, registry, project,
                full_feature_names, **kwargs,
            )  # fmt: skip
        request = as_of_request(
            config, feature_views, feature_refs, entity_df, registry, project, full_feature_names
        )
        plan = JoinPlan(
            views=[view_plan(view, features, full_feature_names, request.repo_path)
                   for view, features in request.to_features.items()],
            partitions=store.partitions, threads=store.threads,
            memory_limit=store.memory_limit,
        )  # fmt: skip
        if not plan.views:  # only request-time features: nothing to partition
            return AsOfOfflineStore.get_historical_features(
                config, feature_views, feature_refs, entity_df, registry, project,
                full_feature_names, **kwargs,
            )  # fmt: skip

        def start() -> tuple[Partitioned, Runner]:
            _connect(store.ray_address)
            runner = RayRunner(num_cpus=store.threads or 1)
            return run(plan, entity_table(entity_df, request.ts_column), runner), runner

        return RayAsOfRetrievalJob(
            start,
            plan.views[-1].entity_keys,
            full_feature_names,
            request.on_demand_feature_views,
            request.metadata,
        )
