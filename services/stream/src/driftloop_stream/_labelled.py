"""transactions + their delayed labels → the labelled history that training reads.

The backfill writes ``<state_dir>/data/transactions.parquet`` once; after that, history
grows here: every transaction the stream service applies waits in the checkpoint (saved
in the same transaction as its batch, so none is lost), and each batch of labels joins
the waiting transactions by id — in either order of arrival — and is written as one
parquet file named by the labels' offsets under ``<state_dir>/data/labelled/``. The file
is written before the labels' offsets are saved, so a crash in between rewrites the same
file with the same rows: nothing lost, nothing doubled.
"""

from __future__ import annotations

import sqlite3

import pandas as pd
import pyarrow as pa

from driftloop.events import Label, Transaction

HISTORY_SCHEMA = pa.schema(
    [
        ("transaction_id", pa.string()), ("customer_id", pa.string()),
        ("merchant_id", pa.string()), ("amount", pa.float64()), ("currency", pa.string()),
        ("merchant_category", pa.string()), ("channel", pa.string()), ("country", pa.string()),
        ("card_country", pa.string()), ("device_id", pa.string()),
        ("event_timestamp", pa.timestamp("ns", tz="UTC")), ("is_fraud", pa.bool_()),
        ("label_timestamp", pa.timestamp("ns", tz="UTC")), ("fraud_pattern", pa.string()),
    ]
)  # fmt: skip
"""The columns of ``data/transactions.parquet`` (the backfill's), in its order."""

_FIELDS = (
    "transaction_id", "customer_id", "merchant_id", "amount", "currency",
    "merchant_category", "channel", "country", "card_country", "device_id",
)  # fmt: skip

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS awaiting (
    transaction_id TEXT PRIMARY KEY, {", ".join(f"{f} ANY" for f in _FIELDS[1:])},
    event_ts REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS awaiting_ts ON awaiting (event_ts);
CREATE TABLE IF NOT EXISTS early_labels (
    transaction_id TEXT PRIMARY KEY, is_fraud INTEGER NOT NULL, label_ts REAL NOT NULL
);
"""


def awaiting_rows(transactions: list[Transaction]) -> list[tuple[object, ...]]:
    return [(*(getattr(t, f) for f in _FIELDS), t.event_time.timestamp()) for t in transactions]


def insert_awaiting(db: sqlite3.Connection, rows: list[tuple[object, ...]]) -> None:
    """Inside the caller's transaction (the stream batch's)."""
    placeholders = ",".join("?" * (len(_FIELDS) + 1))
    db.executemany(
        f"INSERT OR IGNORE INTO awaiting ({', '.join(_FIELDS)}, event_ts) VALUES ({placeholders})",  # noqa: S608
        rows,
    )


def match(db: sqlite3.Connection, labels: list[Label]) -> pd.DataFrame:
    """Inside the caller's transaction: keep ``labels`` that wait for their transaction,
    join every label (new or early) whose transaction waits; remove what was joined.
    Returns the labelled rows (the history's columns)."""
    arrived = [(x.transaction_id, int(x.is_fraud), x.event_time.timestamp()) for x in labels]
    db.executemany(
        "INSERT OR REPLACE INTO early_labels (transaction_id, is_fraud, label_ts) VALUES (?,?,?)",
        arrived,
    )
    columns = ", ".join(f"a.{f}" for f in _FIELDS)
    joined = db.execute(
        f"SELECT {columns}, a.event_ts, l.is_fraud, l.label_ts FROM awaiting a"  # noqa: S608
        " JOIN early_labels l ON l.transaction_id = a.transaction_id ORDER BY a.event_ts"
    ).fetchall()
    ids = [(row[0],) for row in joined]
    db.executemany("DELETE FROM awaiting WHERE transaction_id = ?", ids)
    db.executemany("DELETE FROM early_labels WHERE transaction_id = ?", ids)
    frame = pd.DataFrame(joined, columns=[*_FIELDS, "event_ts", "is_fraud", "label_ts"])
    out = frame[list(_FIELDS)].copy()
    # Seconds as floats carry microseconds exactly once rounded (events keep microseconds).
    out["event_timestamp"] = pd.to_datetime(frame["event_ts"], unit="s", utc=True).dt.round("us")
    out["is_fraud"] = frame["is_fraud"].astype(bool)
    out["label_timestamp"] = pd.to_datetime(frame["label_ts"], unit="s", utc=True).dt.round("us")
    out["fraud_pattern"] = None
    return out


def forget_older_than(db: sqlite3.Connection, horizon_s: float) -> int:
    """Drop transactions and labels that waited more than ``horizon_s`` for their match,
    measured in event time (the newest event seen), not the wall clock: replayed or
    simulated history keeps its own clock."""
    (newest,) = db.execute(
        "SELECT max(t) FROM (SELECT max(event_ts) AS t FROM awaiting"
        " UNION ALL SELECT max(label_ts) FROM early_labels)"
    ).fetchone()
    if newest is None:
        return 0
    cut = float(newest) - horizon_s
    gone = db.execute("DELETE FROM awaiting WHERE event_ts < ?", (cut,)).rowcount
    gone += db.execute("DELETE FROM early_labels WHERE label_ts < ?", (cut,)).rowcount
    return int(gone)
