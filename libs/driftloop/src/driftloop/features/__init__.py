"""Customer and merchant features: the window aggregates shared by stream and backfill,
the batch sources they append to, and point-in-time training sets from Feast."""

from driftloop.features import _feast  # noqa: F401  first: Feast without typeguard's rewrites

# isort: split
from driftloop.features._asof import AsOfOfflineStore, AsOfOfflineStoreConfig, AsOfRetrievalJob
from driftloop.features._asof_ray import (
    RayAsOfOfflineStore,
    RayAsOfOfflineStoreConfig,
    RayAsOfRetrievalJob,
)
from driftloop.features._history import (
    CUSTOMER_AGGREGATE_COLUMNS,
    CUSTOMER_AGGREGATES_SCHEMA,
    MERCHANT_STATS_SCHEMA,
    SCHEMAS,
    aggregate_rows_frame,
    customer_aggregates,
    history_points,
    merchant_stats,
    point_of,
    training_entities,
)
from driftloop.features._offline import delete_batch, list_batches, read_source, write_batch
from driftloop.features._online import OnlineColumns, OnlinePlan
from driftloop.features._store import (
    apply_repo,
    backfill_sources,
    feast_cli,
    feast_environment,
    load_repo_config,
    materialize,
    open_store,
)
from driftloop.features._training import point_in_time, split_service
from driftloop.features._windows import (
    CUSTOMER_FEATURES,
    WINDOWS,
    Aggregator,
    CustomerWindows,
    Point,
    TooLate,
)

__all__ = [
    "CUSTOMER_AGGREGATES_SCHEMA",
    "CUSTOMER_AGGREGATE_COLUMNS",
    "CUSTOMER_FEATURES",
    "MERCHANT_STATS_SCHEMA",
    "SCHEMAS",
    "WINDOWS",
    "Aggregator",
    "AsOfOfflineStore",
    "AsOfOfflineStoreConfig",
    "AsOfRetrievalJob",
    "CustomerWindows",
    "OnlineColumns",
    "OnlinePlan",
    "Point",
    "RayAsOfOfflineStore",
    "RayAsOfOfflineStoreConfig",
    "RayAsOfRetrievalJob",
    "TooLate",
    "aggregate_rows_frame",
    "apply_repo",
    "backfill_sources",
    "customer_aggregates",
    "delete_batch",
    "feast_cli",
    "feast_environment",
    "history_points",
    "list_batches",
    "load_repo_config",
    "materialize",
    "merchant_stats",
    "open_store",
    "point_in_time",
    "point_of",
    "read_source",
    "split_service",
    "training_entities",
    "write_batch",
]
