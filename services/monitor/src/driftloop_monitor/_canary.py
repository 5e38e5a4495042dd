"""A canary's labelled payments beside the serving version's of the same period.

A canary answers the payments of its customers (a stable hash of the customer picks them,
see serving), so the two versions score different payments, and each side's labelled rows
are gathered on their own (unpaired, as the rollback compares two versions):

- a canary prediction (``role: "canary"``) waits in ``canary_pending`` for its label. The
  label join (``_join``) does not hold it (its rows, live figures and rollback watch are
  the serving version's), so a label that came first is taken from the label join's
  ``orphans``, and one that comes later is taken from there as it arrives
  (:meth:`CanaryJoin.label`). The serving version it answered beside is the newest serving
  prediction's (by event time, kept in ``canary_serving``) when the canary answer is read,
  or, for answers read before any, the first serving prediction's; the (serving, canary)
  pair is opened then, first seen at the canary answer's event time;
- a serving prediction joined to its label (the label join calls :meth:`CanaryJoin.served`
  on every join) counts for every open pair of its version whose canary was first seen at
  or before its event time.

Both sides land in ``canary_labelled``, keyed by (transaction id, canary version, role), so
a record read twice counts once, and count towards the pair's next judgement (``_live``,
``_verdicts``). Everything changes inside the batch's checkpoint transaction, with the
offsets. A canary score without a label within the horizon, or over ``max_awaiting``, is
let go and counted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from driftloop.drift import CanarySpec, PerformanceSpec
from driftloop_monitor._checkpoint import Checkpoint, Joined
from driftloop_monitor._live import LiveJoin, Pair

DAY = 86_400.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS canary_serving (
    id INTEGER PRIMARY KEY CHECK (id = 0), version TEXT NOT NULL, event_time REAL NOT NULL);
CREATE TABLE IF NOT EXISTS canary_pending (
    transaction_id TEXT NOT NULL, version TEXT NOT NULL, event_time REAL NOT NULL,
    score REAL NOT NULL, decision INTEGER NOT NULL, serving_version TEXT, is_fraud INTEGER,
    label_time REAL, PRIMARY KEY (transaction_id, version));
CREATE INDEX IF NOT EXISTS canary_pending_time ON canary_pending (event_time);
CREATE INDEX IF NOT EXISTS canary_pending_serving ON canary_pending (serving_version);
CREATE TABLE IF NOT EXISTS canary_labelled (
    transaction_id TEXT NOT NULL, version TEXT NOT NULL, role TEXT NOT NULL,
    serving_version TEXT NOT NULL, event_time REAL NOT NULL, score REAL NOT NULL,
    decision INTEGER NOT NULL, is_fraud INTEGER NOT NULL,
    PRIMARY KEY (transaction_id, version, role));
CREATE INDEX IF NOT EXISTS canary_labelled_pair
    ON canary_labelled (serving_version, version, role, event_time);
CREATE TABLE IF NOT EXISTS canary_pairs (
    serving_version TEXT NOT NULL, version TEXT NOT NULL, first_seen REAL NOT NULL,
    since_eval INTEGER NOT NULL DEFAULT 0, closed TEXT, deadline_said INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (serving_version, version));
"""


@dataclass
class CanaryCounts:
    labelled: int = 0
    """canary rows labelled"""
    served: int = 0
    """serving rows counted beside a canary"""
    expired: int = 0
    evicted: int = 0


class CanaryJoin(LiveJoin):
    role = "canary"
    _pairs = "canary_pairs"
    spec: CanarySpec

    def __init__(
        self, checkpoint: Checkpoint, spec: CanarySpec, performance: PerformanceSpec
    ) -> None:
        super().__init__(checkpoint, spec)
        self._db.executescript(_SCHEMA)
        self._horizon = performance.horizon_days * DAY
        self._cap = performance.max_awaiting
        self.counts = CanaryCounts()

    def serving(self, version: str, t: float) -> None:
        """A serving prediction: its version is the one a canary answers beside (the
        newest by event time). Canary answers read before any serving prediction get it."""
        self._db.execute(
            "INSERT INTO canary_serving (id, version, event_time) VALUES (0,?,?)"
            " ON CONFLICT (id) DO UPDATE SET version = excluded.version,"
            " event_time = excluded.event_time WHERE excluded.event_time >= event_time",
            (version, t),
        )
        waiting = self._db.execute(
            "UPDATE canary_pending SET serving_version = ? WHERE serving_version IS NULL"
            " RETURNING transaction_id, version, event_time",
            (version,),
        ).fetchall()
        for tid, canary, at in waiting:
            self._open_pair(version, str(canary), float(at))
            self._complete(str(tid))

    def _serving_now(self) -> str | None:
        row = self._db.execute("SELECT version FROM canary_serving WHERE id = 0").fetchone()
        return None if row is None else str(row[0])

    def canary(self, tid: str, version: str, t: float, score: float, decision: bool) -> None:
        """A canary's answer: labelled once its label and the serving version are known."""
        known = self._db.execute(
            "SELECT 1 FROM canary_labelled WHERE transaction_id = ? AND version = ?"
            " AND role = 'canary'",
            (tid, version),
        ).fetchone()
        if known is not None:
            return  # read before: labelled already
        serving = self._serving_now()
        if serving is not None:
            self._open_pair(serving, version, t)
        self._db.execute(
            "INSERT OR IGNORE INTO canary_pending (transaction_id, version, event_time, score,"
            " decision, serving_version) VALUES (?,?,?,?,?,?)",
            (tid, version, t, score, int(decision), serving),
        )
        orphan = self._db.execute(
            "DELETE FROM orphans WHERE transaction_id = ? RETURNING is_fraud, event_time", (tid,)
        ).fetchone()
        if orphan is not None:  # the label came first: it is the canary's, not the join's
            self._fill_label(tid, int(orphan[0]), float(orphan[1]))
        self._complete(tid)

    def label(self, tid: str, is_fraud: bool, t: float) -> None:
        """A label: fills the canary's pending answer of the transaction, if any (the label
        join has just left it as an orphan: it is the canary's, so it is taken away)."""
        if self._fill_label(tid, int(is_fraud), t) or self._db.execute(
            "SELECT 1 FROM canary_labelled WHERE transaction_id = ? AND role = 'canary'", (tid,)
        ).fetchone():  # fmt: skip
            self._db.execute("DELETE FROM orphans WHERE transaction_id = ?", (tid,))
        self._complete(tid)

    def _fill_label(self, tid: str, is_fraud: int, t: float) -> bool:
        filled = self._db.execute(
            "UPDATE canary_pending SET is_fraud = ?, label_time = ? WHERE transaction_id = ?"
            " AND is_fraud IS NULL",
            (is_fraud, t, tid),
        ).rowcount
        return filled > 0

    def _complete(self, tid: str) -> None:
        done = self._db.execute(
            "DELETE FROM canary_pending WHERE transaction_id = ? AND serving_version IS NOT NULL"
            " AND is_fraud IS NOT NULL RETURNING version, event_time, score, decision,"
            " serving_version, is_fraud, label_time",
            (tid,),
        ).fetchall()
        for version, predicted_at, score, decision, serving, is_fraud, labelled_at in done:
            if labelled_at - predicted_at > self._horizon:
                self.counts.expired += 1
                continue
            if self._add(tid, version, "canary", serving, predicted_at, score, decision, is_fraud):
                self.counts.labelled += 1

    def served(
        self, tid: str, version: str, t: float, score: float, decision: int, is_fraud: int
    ) -> None:
        """The label join joined a serving score to its label: a row of every open pair of
        that serving version whose canary answered by then."""
        canaries = self._db.execute(
            "SELECT version FROM canary_pairs WHERE serving_version = ? AND closed IS NULL"
            " AND first_seen <= ?",
            (version, t),
        ).fetchall()
        for (canary,) in canaries:
            if self._add(tid, str(canary), "serving", version, t, score, decision, is_fraud):
                self.counts.served += 1

    def _add(
        self, tid: str, canary: str, role: str, serving: str, t: float, score: float,
        decision: int, is_fraud: int | bool,
    ) -> bool:  # fmt: skip
        added = self._db.execute(
            "INSERT OR IGNORE INTO canary_labelled (transaction_id, version, role,"
            " serving_version, event_time, score, decision, is_fraud) VALUES (?,?,?,?,?,?,?,?)",
            (tid, canary, role, serving, t, score, int(decision), int(is_fraud)),
        ).rowcount
        if added == 1:
            self._counted(serving, canary)
        return added == 1

    def sides(self, pair: Pair) -> tuple[list[Joined], list[Joined]]:
        def side(role: str) -> list[Joined]:
            rows = self._db.execute(
                "SELECT event_time, score, decision, is_fraud FROM canary_labelled"
                " WHERE serving_version = ? AND version = ? AND role = ? ORDER BY event_time",
                (pair.serving, pair.challenger, role),
            )
            return [(float(t), float(s), int(d), int(y)) for t, s, d, y in rows]

        return side("serving"), side("canary")

    def pending(self) -> int:
        (count,) = self._db.execute("SELECT count(*) FROM canary_pending").fetchone()
        return int(count)

    def prune(self, newest_label: float) -> None:
        """Let go of canary answers that can no longer be labelled (no label within the
        horizon), of labelled rows older than the horizon, and of the oldest pending
        beyond the cap."""
        if math.isfinite(newest_label):
            expired = self._db.execute(
                "DELETE FROM canary_pending WHERE event_time < ?", (newest_label - self._horizon,)
            ).rowcount
            self.counts.expired += max(0, expired)
            self._db.execute("DELETE FROM canary_labelled WHERE event_time < ?",
                             (newest_label - self._horizon,))  # fmt: skip
        excess = self.pending() - self._cap
        if excess > 0:
            self._db.execute(
                "DELETE FROM canary_pending WHERE rowid IN"
                " (SELECT rowid FROM canary_pending ORDER BY event_time LIMIT ?)",
                (excess,),
            )
            self.counts.evicted += excess
