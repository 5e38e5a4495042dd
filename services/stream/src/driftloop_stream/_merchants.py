"""The daily merchant snapshot: merchant features kept fresh after the backfill.

The backfill writes one merchant snapshot per midnight of its history; without more,
merchant features would stop at the backfill's last midnight, serve that row for ever
online, and turn null in training once its TTL passed. So the stream service makes the
snapshot of every later midnight ``D`` as the backfill would have — the transactions of
the 30 days before ``D`` (the backfill's, the labelled ones, those still waiting for their
label) and the fraud rate among those labelled by ``D`` — once both streams have passed
``D`` by more than the allowed lateness (a stream's watermark is its slowest partition's
newest event): every transaction and every label stamped before ``D`` has then arrived,
so a replay after a crash computes the same rows. Each snapshot
is one offline file named by its day (rewritten, never doubled, by a replay) and a write
of the same rows to the online store; the day is recorded after both.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from driftloop.features import SCHEMAS, list_batches, merchant_snapshot, read_source
from driftloop_stream._labelled import HISTORY_SCHEMA

DAY = 86_400.0
WINDOW_DAYS = 30
MARKS = """
CREATE TABLE IF NOT EXISTS marks (name TEXT PRIMARY KEY, value REAL NOT NULL);
"""
"""Per partition of transactions and of labels the newest event time applied, and the
newest snapshot day, in the stream checkpoint."""
TRANSACTIONS, LABELS, SNAPSHOT = "transactions", "labels", "merchant_snapshot"


def mark(db: sqlite3.Connection, name: str) -> float | None:
    row = db.execute("SELECT value FROM marks WHERE name = ?", (name,)).fetchone()
    return None if row is None else float(row[0])


@dataclass(frozen=True)
class Progress:
    """Where a consumer of one stream stands: its partitions, and those with records it
    has not consumed yet (asked of the broker only when needed)."""

    partitions: set[int]
    behind: Callable[[], set[int]]


def watermark(db: sqlite3.Connection, stream: str, progress: Progress) -> float | None:
    """A stream's watermark: the oldest of its partitions' newest event times applied.
    A partition none of whose events was applied yet holds it back (None) while it has
    records to read; an empty one does not, so an idle partition blocks nothing."""
    rows = db.execute("SELECT name, value FROM marks WHERE name LIKE ?", (f"{stream}/%",))
    newest = {int(name.rsplit("/", 1)[1]): float(value) for name, value in rows}
    missing = progress.partitions - set(newest)
    if not newest or (missing and missing & progress.behind()):
        return None
    return min(newest.values())


def raise_marks(db: sqlite3.Connection, stream: str, newest: dict[int, float]) -> None:
    """Inside the caller's transaction: each partition's newest event time of a batch."""
    for partition, value in newest.items():
        raise_mark(db, f"{stream}/{partition}", value)


def raise_mark(db: sqlite3.Connection, name: str, value: float) -> None:
    """Inside the caller's transaction: the mark becomes ``value`` if that is newer."""
    db.execute(
        "INSERT INTO marks (name, value) VALUES (?, ?)"
        " ON CONFLICT (name) DO UPDATE SET value = max(value, excluded.value)",
        (name, value),
    )


def due_days(
    db: sqlite3.Connection, lateness_s: float, backfilled: float | None,
    transactions: Progress, labels: Progress,
) -> list[float]:  # fmt: skip
    """Midnights (epoch seconds) whose snapshot is due: after the newest one made (or the
    backfill's newest), passed by both watermarks by more than ``lateness_s``."""
    seen = [watermark(db, TRANSACTIONS, transactions), watermark(db, LABELS, labels)]
    if any(v is None for v in seen):
        return []
    settled = min(v for v in seen if v is not None) - lateness_s
    newest_due = (settled // DAY) * DAY
    last = mark(db, SNAPSHOT) or backfilled
    if last is None:  # no backfill: start at the first midnight the stream settles
        return [newest_due] if newest_due > 0 else []
    return [last + DAY * k for k in range(1, int((newest_due - last) // DAY) + 1)]


def backfilled_until(source: str) -> float | None:
    """The newest midnight of the merchant source's snapshots, or None when it has none."""
    if not list_batches(source):
        return None
    stamps = read_source(source)["event_timestamp"]
    return None if stamps.empty else pd.Timestamp(stamps.max()).timestamp()


def window_history(
    db: sqlite3.Connection, backfill: Path, labelled_dir: str, day: float
) -> pd.DataFrame:
    """The transactions of the 30 days before ``day``: the backfill's, the labelled ones
    the stream joined, and those still waiting for their label (label unknown)."""
    start = pd.Timestamp(day - WINDOW_DAYS * DAY, unit="s", tz=UTC)
    end = pd.Timestamp(day, unit="s", tz=UTC)
    parts = []
    filters = [("event_timestamp", ">=", start), ("event_timestamp", "<", end)]
    if backfill.is_file():
        parts.append(pd.read_parquet(backfill, columns=HISTORY_SCHEMA.names, filters=filters))
    if list_batches(labelled_dir):
        joined = read_source(labelled_dir)
        stamps = joined["event_timestamp"]
        parts.append(joined[(stamps >= start) & (stamps < end)][HISTORY_SCHEMA.names])
    waiting = pd.DataFrame(
        db.execute(
            "SELECT transaction_id, merchant_id, merchant_category, event_ts FROM awaiting"
            " WHERE event_ts >= ? AND event_ts < ?",
            (start.timestamp(), day),
        ).fetchall(),
        columns=["transaction_id", "merchant_id", "merchant_category", "event_ts"],
    )
    if not waiting.empty:
        waiting["event_timestamp"] = pd.to_datetime(waiting.pop("event_ts"), unit="s", utc=True)
        waiting["is_fraud"] = pd.NA
        waiting["label_timestamp"] = pd.NaT
        parts.append(waiting)
    columns = ["transaction_id", "merchant_id", "merchant_category", "event_timestamp",
               "is_fraud", "label_timestamp"]  # fmt: skip
    frames = [p[columns] for p in parts if not p.empty]
    if not frames:
        return pd.DataFrame(columns=columns)
    history = pd.concat(frames, ignore_index=True)
    return history.drop_duplicates("transaction_id", keep="first")


def snapshot(history: pd.DataFrame, day: float) -> pd.DataFrame:
    """The merchant_stats rows of midnight ``day``, stamped as made at that midnight (a
    replay makes the same rows)."""
    midnight = datetime.fromtimestamp(day, UTC)
    frame = merchant_snapshot(history, midnight, midnight, WINDOW_DAYS)
    return frame


SCHEMA = SCHEMAS["merchant_stats"]
