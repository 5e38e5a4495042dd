"""Labels joined to predictions by transaction id, within the label horizon.

Either may arrive first: a prediction waits for its label in ``awaiting``, a label that
comes first waits in ``orphans``. Both are bounded: a prediction leaves once labels newer
than its time plus the horizon arrive (it will not be joined any more), an orphan once
predictions that much newer arrive, and neither table grows past ``max_awaiting`` (the
oldest go first). Joined rows are kept per version only as far back as one evaluation.

Every join also counts, in the same transaction, one labelled row (and whether it was
fraud) in the minute of its prediction's event time: the evidence a drift event reports
after its change point. Minutes are kept as far back as the horizon.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from driftloop.drift import PerformanceSpec
from driftloop_monitor._checkpoint import Checkpoint, Joined

DAY = 86_400.0
BUCKET_S = 60.0
"""Evidence is counted per minute of prediction event time."""


@dataclass
class JoinCounts:
    joined: int = 0
    expired: int = 0
    evicted: int = 0


class LabelJoin:
    def __init__(self, checkpoint: Checkpoint, spec: PerformanceSpec) -> None:
        self._db = checkpoint.db
        self._checkpoint = checkpoint
        self._spec = spec
        self._horizon = spec.horizon_days * DAY
        self.counts = JoinCounts()
        self.on_join: list[Callable[[str, str, float, float, int, int], None]] = []
        """Called inside the transaction with every join: (transaction id, version, event
        time, score, decision, is_fraud); the shadow pairing and the canary's serving side
        listen."""

    def prediction(
        self, transaction_id: str, version: str, t: float, score: float, decision: bool
    ) -> str | None:
        """Record a prediction; return its version if a waiting label joined it."""
        row = self._db.execute(
            "DELETE FROM orphans WHERE transaction_id = ? RETURNING is_fraud, event_time",
            (transaction_id,),
        ).fetchone()
        if row is not None and row[1] - t <= self._horizon:
            self._join(transaction_id, version, t, score, int(decision), int(row[0]))
            return version
        self._db.execute(
            "INSERT OR IGNORE INTO awaiting (transaction_id, version, event_time, score, decision)"
            " VALUES (?,?,?,?,?)",
            (transaction_id, version, t, score, int(decision)),
        )
        return None

    def label(self, transaction_id: str, is_fraud: bool, t: float) -> str | None:
        """Record a label; return the version of the prediction it joined, if any."""
        row = self._db.execute(
            "DELETE FROM awaiting WHERE transaction_id = ?"
            " RETURNING version, event_time, score, decision",
            (transaction_id,),
        ).fetchone()
        if row is None:
            self._db.execute(
                "INSERT OR REPLACE INTO orphans (transaction_id, is_fraud, event_time)"
                " VALUES (?,?,?)",
                (transaction_id, int(is_fraud), t),
            )
            return None
        version, predicted_at, score, decision = row
        if t - predicted_at > self._horizon:
            self.counts.expired += 1
            return None
        self._join(transaction_id, str(version), predicted_at, score, decision, int(is_fraud))
        return str(version)

    def _join(
        self, tid: str, version: str, t: float, score: float, decision: int, is_fraud: int
    ) -> None:
        self._db.execute(
            "INSERT INTO joined (version, event_time, score, decision, is_fraud)"
            " VALUES (?,?,?,?,?)",
            (version, t, score, decision, is_fraud),
        )
        self._db.execute(
            "INSERT INTO labelled (bucket, rows, positives) VALUES (?,1,?) ON CONFLICT (bucket)"
            " DO UPDATE SET rows = rows + 1, positives = positives + excluded.positives",
            (math.floor(t / BUCKET_S), is_fraud),
        )
        self.counts.joined += 1
        for listener in self.on_join:
            listener(tid, version, t, score, decision, is_fraud)

    def evidence(self, since: float) -> tuple[int, int]:
        """Labelled rows and positives whose prediction time is in ``since``'s minute or
        later (minutes older than the horizon are let go, see ``prune``)."""
        rows, positives = self._db.execute(
            "SELECT coalesce(sum(rows), 0), coalesce(sum(positives), 0) FROM labelled"
            " WHERE bucket >= ?",
            (math.floor(since / BUCKET_S),),
        ).fetchone()
        return int(rows), int(positives)

    def prune(self, newest_prediction: float, newest_label: float) -> None:
        """Let go of what can no longer join, and of the oldest beyond the caps."""
        expired = self._db.execute(
            "DELETE FROM awaiting WHERE event_time < ?", (newest_label - self._horizon,)
        ).rowcount
        self._db.execute("DELETE FROM orphans WHERE event_time < ?",
                         (newest_prediction - self._horizon,))  # fmt: skip
        self.counts.expired += max(0, expired)
        newest = max(newest_prediction, newest_label)
        if math.isfinite(newest):
            self._db.execute("DELETE FROM labelled WHERE bucket < ?",
                             (math.floor((newest - self._horizon) / BUCKET_S),))  # fmt: skip
        for table in ("awaiting", "orphans"):
            (count,) = self._db.execute(f"SELECT count(*) FROM {table}").fetchone()  # noqa: S608
            excess = int(count) - self._spec.max_awaiting
            if excess > 0:
                self._db.execute(
                    f"DELETE FROM {table} WHERE transaction_id IN"  # noqa: S608
                    f" (SELECT transaction_id FROM {table} ORDER BY event_time LIMIT ?)",
                    (excess,),
                )
                self.counts.evicted += excess

    def waiting(self) -> int:
        (count,) = self._db.execute("SELECT count(*) FROM awaiting").fetchone()
        return int(count)

    def due(self, version: str) -> list[Joined] | None:
        """The last ``labels`` joined rows of a version if an evaluation is due, else None.

        Due every ``step`` joins once ``labels`` exist; older rows are let go."""
        streak, since = self._checkpoint.streak(version, "performance")
        (total,) = self._db.execute(
            "SELECT count(*) FROM joined WHERE version = ?", (version,)
        ).fetchone()
        since += 1
        if total < self._spec.labels or since < self._spec.every:
            self._checkpoint.set_streak(version, "performance", streak, since)
            return None
        self._checkpoint.set_streak(version, "performance", streak, 0)
        rows = self._db.execute(
            "SELECT seq, event_time, score, decision, is_fraud FROM joined WHERE version = ?"
            " ORDER BY seq DESC LIMIT ?",
            (version, self._spec.labels),
        ).fetchall()
        oldest = rows[-1][0]
        self._db.execute("DELETE FROM joined WHERE version = ? AND seq < ?", (version, oldest))
        return [(t, s, int(d), int(y)) for _, t, s, d, y in reversed(rows)]
