"""The monitor's state in one SQLite file, changed once per micro-batch in one transaction.

It holds the rows of open windows, the join of predictions and labels, labelled counts
per minute of prediction time, streaks and when they began, the consumed offsets, and an
outbox of drift events: an event enters the outbox in the same transaction that closes
its window, so a crash either replays the window (same rows, same id) or finds the event
waiting to be published. A label's join and its count commit with the label's offset, so
a replayed batch counts nothing twice. Shadow scores wait for their serving score and
label in ``shadow_pending``, and pair in ``shadow_paired`` (see ``_shadow``), by the same
rule.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from driftloop_monitor._frame import Row

_SCHEMA = """
CREATE TABLE IF NOT EXISTS offsets (
    topic TEXT NOT NULL, partition INTEGER NOT NULL, next_offset INTEGER NOT NULL,
    PRIMARY KEY (topic, partition));
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value REAL NOT NULL);
CREATE TABLE IF NOT EXISTS window_rows (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, version TEXT NOT NULL, bucket INTEGER NOT NULL,
    event_time REAL NOT NULL, score REAL NOT NULL, features TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS streaks (
    version TEXT NOT NULL, kind TEXT NOT NULL, streak INTEGER NOT NULL,
    since_eval INTEGER NOT NULL DEFAULT 0, started REAL, PRIMARY KEY (version, kind));
CREATE TABLE IF NOT EXISTS awaiting (
    transaction_id TEXT PRIMARY KEY, version TEXT NOT NULL, event_time REAL NOT NULL,
    score REAL NOT NULL, decision INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS awaiting_time ON awaiting (event_time);
CREATE TABLE IF NOT EXISTS orphans (
    transaction_id TEXT PRIMARY KEY, is_fraud INTEGER NOT NULL, event_time REAL NOT NULL);
CREATE INDEX IF NOT EXISTS orphans_time ON orphans (event_time);
CREATE TABLE IF NOT EXISTS joined (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, version TEXT NOT NULL, event_time REAL NOT NULL,
    score REAL NOT NULL, decision INTEGER NOT NULL, is_fraud INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS joined_version ON joined (version, seq);
CREATE TABLE IF NOT EXISTS series (
    version TEXT NOT NULL, kind TEXT NOT NULL, start REAL NOT NULL, value REAL NOT NULL,
    PRIMARY KEY (version, kind, start));
CREATE TABLE IF NOT EXISTS labelled (
    bucket INTEGER PRIMARY KEY, rows INTEGER NOT NULL, positives INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS bases (
    version TEXT NOT NULL, window TEXT NOT NULL, profile BLOB NOT NULL,
    PRIMARY KEY (version, window));
CREATE TABLE IF NOT EXISTS rebased (
    version TEXT NOT NULL, column_name TEXT NOT NULL, window TEXT NOT NULL,
    PRIMARY KEY (version, column_name));
CREATE TABLE IF NOT EXISTS shadow_pending (
    transaction_id TEXT NOT NULL, version TEXT NOT NULL, event_time REAL NOT NULL,
    score REAL NOT NULL, decision INTEGER NOT NULL, serving_version TEXT, serving_score REAL,
    serving_decision INTEGER, is_fraud INTEGER, PRIMARY KEY (transaction_id, version));
CREATE INDEX IF NOT EXISTS shadow_pending_time ON shadow_pending (event_time);
CREATE TABLE IF NOT EXISTS shadow_served (
    transaction_id TEXT PRIMARY KEY, version TEXT NOT NULL, event_time REAL NOT NULL,
    score REAL NOT NULL, decision INTEGER NOT NULL, is_fraud INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS shadow_served_time ON shadow_served (event_time);
CREATE TABLE IF NOT EXISTS shadow_paired (
    transaction_id TEXT NOT NULL, version TEXT NOT NULL, serving_version TEXT NOT NULL,
    event_time REAL NOT NULL, serving_score REAL NOT NULL, serving_decision INTEGER NOT NULL,
    score REAL NOT NULL, decision INTEGER NOT NULL, is_fraud INTEGER NOT NULL,
    PRIMARY KEY (transaction_id, version));
CREATE INDEX IF NOT EXISTS shadow_paired_pair ON shadow_paired (serving_version, version);
CREATE TABLE IF NOT EXISTS shadow_pairs (
    serving_version TEXT NOT NULL, version TEXT NOT NULL, first_seen REAL NOT NULL,
    since_eval INTEGER NOT NULL DEFAULT 0, closed TEXT, deadline_said INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (serving_version, version));
CREATE TABLE IF NOT EXISTS outbox (
    event_id TEXT PRIMARY KEY, seq INTEGER NOT NULL, payload BLOB NOT NULL,
    published INTEGER NOT NULL DEFAULT 0, partition INTEGER, offset INTEGER);
"""

SERIES_MAX = 500
"""Judged windows per version and kind whose statistic the change point is estimated on."""

Joined = tuple[float, float, int, int]
"""event_time, score, decision, is_fraud"""


class Checkpoint:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(_SCHEMA)
        columns = {row[1] for row in self.db.execute("PRAGMA table_info(streaks)")}
        if "started" not in columns:  # a checkpoint written before streaks kept their start
            self.db.execute("ALTER TABLE streaks ADD COLUMN started REAL")

    @contextmanager
    def transaction(self) -> Iterator[None]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # --- positions and scalars

    def offsets(self, topic: str) -> dict[int, int]:
        rows = self.db.execute(
            "SELECT partition, next_offset FROM offsets WHERE topic = ?", (topic,)
        )
        return {int(p): int(o) for p, o in rows}

    def save_offsets(self, topic: str, next_offsets: dict[int, int]) -> None:
        self.db.executemany(
            "INSERT INTO offsets (topic, partition, next_offset) VALUES (?,?,?) ON CONFLICT"
            " (topic, partition) DO UPDATE SET next_offset = excluded.next_offset",
            [(topic, p, o) for p, o in next_offsets.items()],
        )

    def get(self, key: str, default: float) -> float:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return float(row[0]) if row else default

    def items(self, prefix: str) -> list[tuple[str, float]]:
        rows = self.db.execute("SELECT key, value FROM meta WHERE key LIKE ?", (prefix + "%",))
        return [(str(k), float(v)) for k, v in rows]

    def put(self, key: str, value: float) -> None:
        self.db.execute(
            "INSERT INTO meta (key, value) VALUES (?,?) ON CONFLICT (key) DO UPDATE"
            " SET value = excluded.value",
            (key, value),
        )

    def rebase(self, version: str, columns: list[str], window: str, profile: bytes) -> None:
        """``columns`` of ``version`` are tested against ``window``'s profile from now on."""
        self.db.execute("INSERT OR REPLACE INTO bases (version, window, profile) VALUES (?,?,?)",
                        (version, window, profile))  # fmt: skip
        self.db.executemany(
            "INSERT OR REPLACE INTO rebased (version, column_name, window) VALUES (?,?,?)",
            [(version, column, window) for column in columns],
        )

    def rebased(self, version: str) -> dict[str, str]:
        """Column -> the window of ``version``'s traffic it was rebased on."""
        rows = self.db.execute(
            "SELECT column_name, window FROM rebased WHERE version = ?", (version,)
        )
        return {str(c): str(w) for c, w in rows}

    def base_profile(self, version: str, window: str) -> bytes:
        row = self.db.execute(
            "SELECT profile FROM bases WHERE version = ? AND window = ?", (version, window)
        ).fetchone()
        if row is None:
            raise KeyError(f"no base window {window} of {version}")
        return bytes(row[0])

    def streak(self, version: str, kind: str) -> tuple[int, int]:
        row = self.db.execute(
            "SELECT streak, since_eval FROM streaks WHERE version = ? AND kind = ?", (version, kind)
        ).fetchone()
        return (int(row[0]), int(row[1])) if row else (0, 0)

    def set_streak(self, version: str, kind: str, streak: int, since_eval: int = 0) -> None:
        self.db.execute(
            "INSERT INTO streaks (version, kind, streak, since_eval) VALUES (?,?,?,?) ON CONFLICT"
            " (version, kind) DO UPDATE SET streak = excluded.streak,"
            " since_eval = excluded.since_eval",
            (version, kind, streak, since_eval),
        )

    def streak_started(self, version: str, kind: str) -> float | None:
        """Event time at which the current streak of ``kind`` began, if one runs."""
        row = self.db.execute(
            "SELECT started FROM streaks WHERE version = ? AND kind = ? AND streak > 0",
            (version, kind),
        ).fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def set_streak_started(self, version: str, kind: str, started: float | None) -> None:
        self.db.execute(
            "INSERT INTO streaks (version, kind, streak, started) VALUES (?,?,0,?) ON CONFLICT"
            " (version, kind) DO UPDATE SET started = excluded.started",
            (version, kind, started),
        )

    def add_to_series(self, version: str, kind: str, start: float, value: float) -> None:
        """One judged window's statistic (a replayed window overwrites its own point);
        the newest ``SERIES_MAX`` per version and kind are kept."""
        self.db.execute(
            "INSERT OR REPLACE INTO series (version, kind, start, value) VALUES (?,?,?,?)",
            (version, kind, start, value),
        )
        self.db.execute(
            "DELETE FROM series WHERE version = ? AND kind = ? AND start < (SELECT min(start)"
            " FROM (SELECT start FROM series WHERE version = ? AND kind = ?"
            " ORDER BY start DESC LIMIT ?))",
            (version, kind, version, kind, SERIES_MAX),
        )

    def series(self, version: str, kind: str) -> list[tuple[float, float]]:
        """(window start, statistic) of the version's judged windows of ``kind``, oldest
        first."""
        rows = self.db.execute(
            "SELECT start, value FROM series WHERE version = ? AND kind = ? ORDER BY start",
            (version, kind),
        )
        return [(float(t), float(v)) for t, v in rows]

    def running(self, version: str) -> dict[str, float | None]:
        """The version's running streaks: kind → when it began (as kept)."""
        rows = self.db.execute(
            "SELECT kind, started FROM streaks WHERE version = ? AND streak > 0", (version,)
        )
        return {str(k): (None if t is None else float(t)) for k, t in rows}

    # --- open windows

    def add_row(
        self, version: str, bucket: int, event_time: float, score: float, features: object
    ) -> int:
        cursor = self.db.execute(
            "INSERT INTO window_rows (version, bucket, event_time, score, features)"
            " VALUES (?,?,?,?,?)",
            (version, bucket, event_time, score, json.dumps(features, allow_nan=True)),
        )
        return int(cursor.lastrowid or 0)

    def open_rows(self) -> Iterator[tuple[str, int, Row]]:
        rows = self.db.execute(
            "SELECT seq, version, bucket, event_time, score, features FROM window_rows ORDER BY seq"
        )
        for seq, version, bucket, event_time, score, features in rows:
            yield version, int(bucket), Row(int(seq), event_time, score, json.loads(features))

    def drop_rows(self, version: str, bucket: int, last_seq: int) -> None:
        self.db.execute(
            "DELETE FROM window_rows WHERE version = ? AND bucket = ? AND seq <= ?",
            (version, bucket, last_seq),
        )
