"""Shadow scores paired with the serving version's score and the label of the same payment.

A shadow prediction (``role: "shadow"``) is kept in ``shadow_pending`` by (transaction id,
shadow version) until the two other parts of its pair are known: the serving version's
score of the same transaction and the label. The three arrive in any order:

- the serving score is read from the label join's ``awaiting`` row when the shadow comes
  after it, or filled in when it comes later (:meth:`ShadowJoin.serving`);
- the label is read from the label join's ``orphans`` when it came first, or filled in
  when it comes later (:meth:`ShadowJoin.label`);
- a serving score already joined to its label before the shadow score came (the label
  join let both go) is remembered for ``pair_wait_s`` of event time in ``shadow_served``
  (:meth:`ShadowJoin.served`, called by the label join on every join).

A complete pair moves to ``shadow_paired`` (keyed like the pending row, so a record read
twice pairs once) and counts towards its (serving, shadow) pair's next judgement (see
``_live`` and ``_verdicts``). Everything changes inside the batch's checkpoint transaction, which
also commits the offsets: a crash replays the batch from the last commit, never half of it.
What cannot pair is let go by the label horizon and the ``max_awaiting`` cap, and counted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from driftloop.drift import PerformanceSpec, ShadowSpec
from driftloop_monitor._checkpoint import Checkpoint, Joined
from driftloop_monitor._live import LiveJoin, Pair

DAY = 86_400.0


@dataclass
class ShadowCounts:
    paired: int = 0
    expired: int = 0
    evicted: int = 0


PairedRow = tuple[float, float, int, float, int, int]
"""event_time, serving score, serving decision, shadow score, shadow decision, is_fraud"""


class ShadowJoin(LiveJoin):
    role = "shadow"
    _pairs = "shadow_pairs"
    spec: ShadowSpec

    def __init__(
        self, checkpoint: Checkpoint, spec: ShadowSpec, performance: PerformanceSpec
    ) -> None:
        super().__init__(checkpoint, spec)
        self._horizon = performance.horizon_days * DAY
        self._cap = performance.max_awaiting
        self.counts = ShadowCounts()

    # --- the three parts of a pair

    def shadow(self, tid: str, version: str, t: float, score: float, decision: bool) -> None:
        """A shadow score: pending until the serving score and the label are known."""
        known = self._db.execute(
            "SELECT 1 FROM shadow_paired WHERE transaction_id = ? AND version = ?", (tid, version)
        ).fetchone()
        if known is not None:
            return  # read before: paired already
        self._db.execute(
            "INSERT OR IGNORE INTO shadow_pending (transaction_id, version, event_time, score,"
            " decision) VALUES (?,?,?,?,?)",
            (tid, version, t, score, int(decision)),
        )
        served = self._db.execute(
            "SELECT version, score, decision, NULL FROM awaiting WHERE transaction_id = ?"
            " UNION ALL SELECT version, score, decision, is_fraud FROM shadow_served"
            " WHERE transaction_id = ?",
            (tid, tid),
        ).fetchone()
        if served is not None:
            self._fill_serving(tid, str(served[0]), float(served[1]), int(served[2]))
            if served[3] is not None:
                self._fill_label(tid, int(served[3]))
        orphan = self._db.execute(
            "SELECT is_fraud FROM orphans WHERE transaction_id = ?", (tid,)
        ).fetchone()
        if orphan is not None:
            self._fill_label(tid, int(orphan[0]))
        self._complete(tid)

    def serving(self, tid: str, version: str, score: float, decision: bool) -> None:
        """The serving version's score of a transaction (every serving prediction)."""
        self._fill_serving(tid, version, score, int(decision))
        self._complete(tid)

    def label(self, tid: str, is_fraud: bool) -> None:
        self._fill_label(tid, int(is_fraud))
        self._complete(tid)

    def served(
        self, tid: str, version: str, t: float, score: float, decision: int, is_fraud: int
    ) -> None:
        """The label join joined a serving score to its label: pairs a waiting shadow
        score, and waits ``pair_wait_s`` for one that comes later."""
        self._db.execute(
            "INSERT OR REPLACE INTO shadow_served (transaction_id, version, event_time, score,"
            " decision, is_fraud) VALUES (?,?,?,?,?,?)",
            (tid, version, t, score, decision, is_fraud),
        )
        self._fill_serving(tid, version, score, decision)
        self._fill_label(tid, is_fraud)
        self._complete(tid)

    # --- pairing

    def _fill_serving(self, tid: str, version: str, score: float, decision: int) -> None:
        rows = self._db.execute(
            "UPDATE shadow_pending SET serving_version = ?, serving_score = ?,"
            " serving_decision = ? WHERE transaction_id = ? AND serving_version IS NULL"
            " RETURNING version, event_time",
            (version, score, decision, tid),
        ).fetchall()
        for shadow, t in rows:
            self._open_pair(version, shadow, t)

    def _fill_label(self, tid: str, is_fraud: int) -> None:
        self._db.execute(
            "UPDATE shadow_pending SET is_fraud = ? WHERE transaction_id = ? AND is_fraud IS NULL",
            (is_fraud, tid),
        )

    def _complete(self, tid: str) -> None:
        done = self._db.execute(
            "DELETE FROM shadow_pending WHERE transaction_id = ? AND serving_version IS NOT NULL"
            " AND is_fraud IS NOT NULL RETURNING version, serving_version, event_time,"
            " serving_score, serving_decision, score, decision, is_fraud",
            (tid,),
        ).fetchall()
        for shadow, serving, *values in done:
            added = self._db.execute(
                "INSERT OR IGNORE INTO shadow_paired (transaction_id, version, serving_version,"
                " event_time, serving_score, serving_decision, score, decision, is_fraud)"
                " VALUES (?,?,?,?,?,?,?,?,?)",
                (tid, shadow, serving, *values),
            ).rowcount
            if added == 1:
                self._counted(serving, shadow)
                self.counts.paired += 1

    # --- reading and letting go

    def paired(self, serving: str, shadow: str) -> list[PairedRow]:
        rows = self._db.execute(
            "SELECT event_time, serving_score, serving_decision, score, decision, is_fraud"
            " FROM shadow_paired WHERE serving_version = ? AND version = ? ORDER BY event_time",
            (serving, shadow),
        )
        return [(float(t), float(a), int(b), float(c), int(d), int(y)) for t, a, b, c, d, y in rows]

    def sides(self, pair: Pair) -> tuple[list[Joined], list[Joined]]:
        rows = self.paired(pair.serving, pair.challenger)
        serving: list[Joined] = [(t, a, b, y) for t, a, b, _, _, y in rows]
        return serving, [(t, c, d, y) for t, _, _, c, d, y in rows]

    def pending(self) -> int:
        (count,) = self._db.execute("SELECT count(*) FROM shadow_pending").fetchone()
        return int(count)

    def prune(self, prediction_watermark: float, newest_label: float) -> None:
        """Let go of shadow scores that can no longer pair (no label within the horizon),
        of labelled serving scores no shadow score came for within ``pair_wait_s``, of
        paired rows older than the horizon, and of the oldest pending beyond the cap."""
        if math.isfinite(newest_label):
            expired = self._db.execute(
                "DELETE FROM shadow_pending WHERE event_time < ?", (newest_label - self._horizon,)
            ).rowcount
            self.counts.expired += max(0, expired)
            self._db.execute("DELETE FROM shadow_paired WHERE event_time < ?",
                             (newest_label - self._horizon,))  # fmt: skip
        if math.isfinite(prediction_watermark):
            self._db.execute("DELETE FROM shadow_served WHERE event_time < ?",
                             (prediction_watermark - self.spec.pair_wait_s,))  # fmt: skip
        excess = self.pending() - self._cap
        if excess > 0:
            self._db.execute(
                "DELETE FROM shadow_pending WHERE rowid IN"
                " (SELECT rowid FROM shadow_pending ORDER BY event_time LIMIT ?)",
                (excess,),
            )
            self.counts.evicted += excess
