"""driftloop's Feast definitions: card-fraud features for customers and merchants.

Read by path (`feast apply`), never imported by driftloop's code. Feature data lives under
``$DRIFTLOOP_FEATURE_DATA`` (absolute, or a URI such as ``s3://…`` on Kubernetes) as
directories of parquet files that the stream service and the backfill append to.
Why these features: see ``features/README.md``.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pandas as pd
from feast import (
    Entity,
    FeatureService,
    FeatureView,
    Field,
    FileSource,
    PushSource,
    RequestSource,
    ValueType,
)
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Float64, Int64, String

DATA = os.environ.get("DRIFTLOOP_FEATURE_DATA") or str(
    Path(__file__).resolve().parents[2] / ".driftloop" / "features"
)

customer = Entity(
    name="customer",
    join_keys=["customer_id"],
    value_type=ValueType.STRING,
    description="A card holder.",
)
merchant = Entity(
    name="merchant",
    join_keys=["merchant_id"],
    value_type=ValueType.STRING,
    description="An acceptor of card payments.",
)

customer_aggregates_batch = FileSource(
    name="customer_aggregates_batch",
    path=f"{DATA}/customer_aggregates",
    timestamp_field="event_timestamp",
    created_timestamp_column="created",
    description="Windowed aggregates, one row per processed transaction (backfill + stream).",
)
customer_aggregates_push = PushSource(
    name="customer_aggregates_push",
    batch_source=customer_aggregates_batch,
    description="The stream service pushes fresh aggregates here.",
)

customer_aggregates = FeatureView(
    name="customer_aggregates",
    entities=[customer],
    ttl=timedelta(days=7),
    schema=[
        Field(name="txn_count_1h", dtype=Int64),
        Field(name="txn_count_24h", dtype=Int64),
        Field(name="txn_count_7d", dtype=Int64),
        Field(name="amount_mean_24h", dtype=Float64),
        Field(name="amount_max_24h", dtype=Float64),
        Field(name="amount_mean_7d", dtype=Float64),
        Field(name="amount_max_7d", dtype=Float64),
        Field(name="distinct_merchants_24h", dtype=Int64),
        Field(name="distinct_devices_7d", dtype=Int64),
        Field(name="foreign_share_7d", dtype=Float64),
        Field(name="online_share_24h", dtype=Float64),
        Field(name="last_txn_unix", dtype=Float64),
    ],
    online=True,
    source=customer_aggregates_push,
    tags={"owner": "driftloop", "version": "1"},
)

merchant_stats_batch = FileSource(
    name="merchant_stats_batch",
    path=f"{DATA}/merchant_stats",
    timestamp_field="event_timestamp",
    created_timestamp_column="created",
    description="Daily merchant snapshots from labelled history (labels known by then).",
)

merchant_stats = FeatureView(
    name="merchant_stats",
    entities=[merchant],
    ttl=timedelta(days=2),
    schema=[
        Field(name="merchant_category", dtype=String),
        Field(name="merchant_txn_count_30d", dtype=Int64),
        Field(name="merchant_fraud_rate_30d", dtype=Float64),
    ],
    online=True,
    source=merchant_stats_batch,
    tags={"owner": "driftloop", "version": "1"},
)

transaction_request = RequestSource(
    name="transaction_request",
    schema=[
        Field(name="amount", dtype=Float64),
        Field(name="country", dtype=String),
        Field(name="card_country", dtype=String),
        Field(name="txn_unix", dtype=Float64),
    ],
    description="What the payment system sends with each scoring request.",
)


@on_demand_feature_view(
    sources=[customer_aggregates, transaction_request],
    schema=[
        Field(name="amount_to_mean_7d", dtype=Float64),
        Field(name="is_foreign", dtype=Int64),
        Field(name="hour_of_day", dtype=Int64),
        Field(name="seconds_since_last_txn", dtype=Float64),
    ],
    mode="pandas",
    description="Request-time features: the transaction against the customer's habits.",
)
def transaction_context(inputs: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame(index=inputs.index)
    mean = inputs["amount_mean_7d"].astype("float64")
    # No history (a new customer): the ratio is 1 — the amount is its own mean.
    out["amount_to_mean_7d"] = (inputs["amount"] / mean.where(mean > 0)).fillna(1.0)
    out["is_foreign"] = (inputs["country"] != inputs["card_country"]).astype("int64")
    when = pd.to_datetime(inputs["txn_unix"], unit="s", utc=True)
    out["hour_of_day"] = when.dt.hour.astype("int64")
    since = inputs["txn_unix"] - inputs["last_txn_unix"].astype("float64")
    # No history: a sentinel of 30 days, beyond every window.
    out["seconds_since_last_txn"] = since.fillna(30 * 86400.0).clip(lower=0.0)
    return out


fraud_v1 = FeatureService(
    name="fraud_v1",
    features=[customer_aggregates, merchant_stats, transaction_context],
    description="Features of the card-fraud model, version 1.",
    tags={"model": "fraud"},
)


# A second, smaller model's features: customer habits and the request context only (no
# merchant statistics). Its spec lives beside its tests; adding it took no code change.
fraud_lite_v1 = FeatureService(
    name="fraud_lite_v1",
    features=[
        customer_aggregates[["txn_count_1h", "txn_count_24h", "amount_mean_7d", "amount_max_7d"]],
        transaction_context[["amount_to_mean_7d", "is_foreign", "seconds_since_last_txn"]],
    ],
    description="Features of the small card-fraud model (customer habits and context only).",
    tags={"model": "fraud-lite"},
)
