"""Feature tables from a labelled transaction history (the backfill's batch path)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import numpy as np
import pandas as pd
import pyarrow as pa

from driftloop.events import Transaction
from driftloop.features._windows import CUSTOMER_FEATURES, Aggregator, Point

ONLINE_CHANNELS = frozenset({"online"})

_TS = pa.timestamp("ns", tz="UTC")
CUSTOMER_AGGREGATES_SCHEMA = pa.schema(
    [("customer_id", pa.string()), ("event_timestamp", _TS), ("created", _TS)]
    + [
        (name, pa.int64() if name.startswith(("txn_count", "distinct")) else pa.float64())
        for name in CUSTOMER_FEATURES
    ]
)
MERCHANT_STATS_SCHEMA = pa.schema(
    [
        ("merchant_id", pa.string()),
        ("event_timestamp", _TS),
        ("created", _TS),
        ("merchant_category", pa.string()),
        ("merchant_txn_count_30d", pa.int64()),
        ("merchant_fraud_rate_30d", pa.float64()),
    ]
)
SCHEMAS = {
    "customer_aggregates": CUSTOMER_AGGREGATES_SCHEMA,
    "merchant_stats": MERCHANT_STATS_SCHEMA,
}
CUSTOMER_AGGREGATE_COLUMNS: tuple[str, ...] = tuple(CUSTOMER_AGGREGATES_SCHEMA.names)
_NUMPY_TYPES = {pa.int64(): "int64", pa.float64(): "float64"}


def _conform(frame: pd.DataFrame, schema: pa.Schema) -> pd.DataFrame:
    """The schema's columns, in its order, with its integer and float types."""
    for field in schema:
        if field.type in _NUMPY_TYPES:
            frame[field.name] = frame[field.name].astype(_NUMPY_TYPES[field.type])
    conformed: pd.DataFrame = frame[schema.names]
    return conformed


def point_of(txn: Transaction) -> Point:
    return Point(
        ts=txn.event_time.timestamp(),
        transaction_id=txn.transaction_id,
        amount=txn.amount,
        merchant_id=txn.merchant_id,
        device_id=txn.device_id,
        foreign=txn.country != txn.card_country,
        online=txn.channel in ONLINE_CHANNELS,
    )


def aggregate_rows_frame(rows: list[dict[str, object]], created: datetime) -> pd.DataFrame:
    """Feature rows as the customer_aggregates batch source stores them."""
    frame = pd.DataFrame.from_records(
        rows, columns=[c for c in CUSTOMER_AGGREGATE_COLUMNS if c != "created"]
    )
    frame["event_timestamp"] = pd.to_datetime(frame["event_timestamp"], unit="s", utc=True)
    frame["created"] = pd.Timestamp(created)
    return _conform(frame, CUSTOMER_AGGREGATES_SCHEMA)


def history_points(history: pd.DataFrame) -> Iterator[tuple[str, Point]]:
    """(customer, window point) per transaction of ``history``, in event-time order."""
    ordered = history.sort_values(["event_timestamp", "transaction_id"], kind="stable")
    ts = ordered["event_timestamp"].map(pd.Timestamp.timestamp).to_numpy()
    devices = [d if isinstance(d, str) else None for d in ordered["device_id"]]
    columns = zip(
        ordered["customer_id"], ts, ordered["transaction_id"], ordered["amount"].astype(float),
        ordered["merchant_id"], devices, ordered["country"] != ordered["card_country"],
        ordered["channel"].isin(ONLINE_CHANNELS), strict=True,
    )  # fmt: skip
    for customer, t, tid, amount, merchant, device, foreign, online in columns:
        yield customer, Point(float(t), tid, amount, merchant, device, bool(foreign), bool(online))


def customer_aggregates(
    history: pd.DataFrame, created: datetime, lateness_s: float = 300.0
) -> pd.DataFrame:
    """One aggregate row per transaction of ``history``, in event-time order."""
    aggregator = Aggregator(lateness_s)
    rows: list[dict[str, object]] = []
    for customer, point in history_points(history):
        rows.extend(aggregator.observe(customer, point))
    return aggregate_rows_frame(rows, created)


def merchant_stats(history: pd.DataFrame, created: datetime, days: int = 30) -> pd.DataFrame:
    """Daily merchant snapshots: at midnight D, the category, the transactions of the 30
    days before D, and the fraud rate among those whose label had arrived by D — for every
    midnight up to ``created``, when the job runs. A snapshot stamped after ``created``
    would count labels that had not arrived yet, and would reach the offline store (so
    training) but never the online store: materialization stops at the job's time."""
    frame = history[["merchant_id", "merchant_category", "event_timestamp", "is_fraud",
                     "label_timestamp"]].copy()  # fmt: skip
    first = frame["event_timestamp"].min().normalize() + pd.Timedelta(days=1)
    last = min(
        frame["event_timestamp"].max().normalize() + pd.Timedelta(days=1),
        pd.Timestamp(created).tz_convert("UTC").floor("D"),
    )
    snapshots = []
    category = frame.groupby("merchant_id")["merchant_category"].agg(lambda s: s.mode().iloc[0])
    for day in pd.date_range(first, last, freq="D"):
        window = frame[(frame["event_timestamp"] >= day - pd.Timedelta(days=days))
                       & (frame["event_timestamp"] < day)]  # fmt: skip
        known = window[window["label_timestamp"] < day]
        counts = window.groupby("merchant_id").size()
        fraud = known.groupby("merchant_id")["is_fraud"].agg(["sum", "size"])
        snap = pd.DataFrame({"merchant_txn_count_30d": counts})
        snap["merchant_fraud_rate_30d"] = (fraud["sum"] / fraud["size"]).reindex(snap.index)
        snap["event_timestamp"] = day
        snapshots.append(snap)
    if not snapshots:  # no midnight between the first payment and the job
        empty: pd.DataFrame = MERCHANT_STATS_SCHEMA.empty_table().to_pandas()
        return empty
    out = pd.concat(snapshots).reset_index(names="merchant_id")
    out["merchant_category"] = out["merchant_id"].map(category)
    out["created"] = pd.Timestamp(created)
    out = _conform(out, MERCHANT_STATS_SCHEMA)
    return out.sort_values(["event_timestamp", "merchant_id"]).reset_index(drop=True)


def training_entities(labelled: pd.DataFrame) -> pd.DataFrame:
    """The entity rows of a training set: each labelled transaction, asking for features as
    of one microsecond before it (what serving saw), with request-time inputs."""
    out = labelled.copy()
    out["event_timestamp"] = out["event_timestamp"] - pd.Timedelta(microseconds=1)
    out["txn_unix"] = labelled["event_timestamp"].map(pd.Timestamp.timestamp).astype(np.float64)
    return out


def empty_sources() -> dict[str, pd.DataFrame]:
    """A zero-row frame per batch source: what a new repository starts from, so queries
    work before any history exists. Write them with :data:`SCHEMAS`."""
    return {name: schema.empty_table().to_pandas() for name, schema in SCHEMAS.items()}
