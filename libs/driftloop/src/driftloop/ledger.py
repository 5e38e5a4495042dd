"""Effectively-once effects: an effect and the mark "this event id is done" commit together.

A consumer delivers at least once; a service whose effect lives in SQLite wraps the effect
and :meth:`Ledger.claim` in one transaction, so a redelivered event finds its id claimed and
does nothing.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class Ledger:
    """Event ids whose effect is done, in a SQLite file that may also hold the effects."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS processed_events ("
            " event_id TEXT PRIMARY KEY, processed_at TEXT DEFAULT CURRENT_TIMESTAMP)"
        )
        return conn

    @contextmanager
    def transaction(self, conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` … ``COMMIT``; rolled back if the block raises."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    @staticmethod
    def claim(conn: sqlite3.Connection, event_id: str) -> bool:
        """Mark ``event_id`` done inside the open transaction; False if it already was."""
        cursor = conn.execute(
            "INSERT OR IGNORE INTO processed_events (event_id) VALUES (?)", (event_id,)
        )
        return cursor.rowcount == 1
