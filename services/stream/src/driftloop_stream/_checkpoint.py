"""The stream service's checkpoint: retained events and the offsets they cover, in SQLite.

Window state is a function of the retained events, so keeping those (not the windows) and
the next offset per partition in one transaction makes a restart resume exactly where the
last completed micro-batch ended.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable
from pathlib import Path

from driftloop.features import Point
from driftloop_stream._labelled import SCHEMA as LABELLED_SCHEMA
from driftloop_stream._labelled import insert_awaiting

_SCHEMA = """
CREATE TABLE IF NOT EXISTS retained (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    customer_id TEXT NOT NULL, ts REAL NOT NULL, transaction_id TEXT NOT NULL UNIQUE,
    amount REAL NOT NULL, merchant_id TEXT NOT NULL, device_id TEXT,
    is_foreign INTEGER NOT NULL, is_online INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS retained_ts ON retained (ts);
CREATE TABLE IF NOT EXISTS offsets (
    topic TEXT NOT NULL, partition INTEGER NOT NULL, next_offset INTEGER NOT NULL,
    PRIMARY KEY (topic, partition)
);
"""


class Checkpoint:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # One thread at a time uses it, not always the one that opened it.
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._db.executescript(LABELLED_SCHEMA)

    @property
    def db(self) -> sqlite3.Connection:
        return self._db

    def offsets(self, topic: str) -> dict[int, int]:
        rows = self._db.execute(
            "SELECT partition, next_offset FROM offsets WHERE topic = ?", (topic,)
        )
        return {int(p): int(o) for p, o in rows}

    def retained(self) -> Iterable[tuple[str, Point]]:
        """Every retained event in the order it was first applied."""
        rows = self._db.execute(
            "SELECT customer_id, ts, transaction_id, amount, merchant_id, device_id, is_foreign,"
            " is_online FROM retained ORDER BY seq"
        )
        for c, ts, tid, amount, merchant, device, foreign, online in rows:
            yield c, Point(ts, tid, amount, merchant, device, bool(foreign), bool(online))

    def save(
        self,
        topic: str,
        applied: list[tuple[str, Point]],
        next_offsets: dict[int, int],
        horizons: dict[str, float],
        awaiting: list[tuple[object, ...]] | None = None,
        then: Callable[[sqlite3.Connection], None] | None = None,
    ) -> None:
        """Record a completed micro-batch in one transaction: its events, the offsets after
        it, per customer the events the windows let go (``ts <= horizon``), and the
        transactions that now wait for their labels; ``then`` runs last, inside the same
        transaction."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany(
                "INSERT OR IGNORE INTO retained (customer_id, ts, transaction_id, amount,"
                " merchant_id, device_id, is_foreign, is_online) VALUES (?,?,?,?,?,?,?,?)",
                [
                    (
                        c,
                        p.ts,
                        p.transaction_id,
                        p.amount,
                        p.merchant_id,
                        p.device_id,
                        int(p.foreign),
                        int(p.online),
                    )
                    for c, p in applied
                ],
            )
            db.executemany(
                "DELETE FROM retained WHERE customer_id = ? AND ts <= ?", list(horizons.items())
            )
            insert_awaiting(db, awaiting or [])
            save_offsets(db, topic, next_offsets)
            if then is not None:
                then(db)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def close(self) -> None:
        self._db.close()


def save_offsets(db: sqlite3.Connection, topic: str, next_offsets: dict[int, int]) -> None:
    db.executemany(
        "INSERT INTO offsets (topic, partition, next_offset) VALUES (?,?,?)"
        " ON CONFLICT (topic, partition) DO UPDATE SET next_offset = excluded.next_offset",
        [(topic, p, o) for p, o in next_offsets.items()],
    )
