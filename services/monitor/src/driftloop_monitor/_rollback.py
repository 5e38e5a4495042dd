"""A promoted version judged against the version it replaced, on live labels.

Each labelled evaluation of a version (``LabelJoin.due``) adds its rows to the version's
pool (``live_rows``: its last ``evaluations`` evaluations; the two newest versions keep
one) and leaves the pool's figures in the checkpoint (``live_figures``: metrics, rows,
positives, event times), so the version that served before a promotion keeps its last
live figures. A version's first evaluation after another version's arms a watch
(``rollback_watch``) with those figures, frozen; after each of its first ``evaluations``
evaluations its own pool is compared with them (see ``RollbackSpec``), and a
significant regression becomes a ``rollback`` drift event whose
id derives from the model and both versions. All of it is written in the batch's
transaction, with the offsets, so a replayed batch reaches the same state and event.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from driftloop.drift import MonitorPolicy, compare_metrics
from driftloop.events import DriftEvent, MetricRegression, Regression, Window
from driftloop_monitor._checkpoint import Checkpoint, Joined
from driftloop_monitor._judge import performance_metrics

_SCHEMA = """
CREATE TABLE IF NOT EXISTS live_figures (
    version TEXT PRIMARY KEY, seq INTEGER NOT NULL, metrics TEXT NOT NULL,
    start REAL NOT NULL, end REAL NOT NULL);
CREATE TABLE IF NOT EXISTS live_rows (
    version TEXT NOT NULL, evaluation INTEGER NOT NULL, event_time REAL NOT NULL,
    score REAL NOT NULL, decision INTEGER NOT NULL, is_fraud INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS live_rows_version ON live_rows (version, evaluation);
CREATE TABLE IF NOT EXISTS rollback_watch (
    version TEXT PRIMARY KEY, previous TEXT NOT NULL, previous_metrics TEXT NOT NULL,
    previous_start REAL NOT NULL, previous_end REAL NOT NULL,
    evaluations INTEGER NOT NULL DEFAULT 0, closed TEXT);
"""

Figures = tuple[dict[str, float], float, float]
"""metrics (with rows and positives), first and last event time of the evaluation"""


@dataclass(frozen=True)
class Watched:
    """One evaluation of a watched version: what it was compared with and the outcome."""

    version: str
    previous: str
    evaluation: int
    verdict: str
    """regressed | not_worse | too_few | (closed: cleared after the last evaluation)"""
    comparisons: list[MetricRegression]
    armed: bool
    event: DriftEvent | None


def _utc(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


class Rollbacks:
    def __init__(self, checkpoint: Checkpoint, policy: MonitorPolicy) -> None:
        self._db = checkpoint.db
        self._db.executescript(_SCHEMA)
        self._policy = policy
        self.judged: list[Watched] = []
        """This batch's judgements, for the metrics after the commit."""

    def figures(self, version: str) -> Figures | None:
        row = self._db.execute(
            "SELECT metrics, start, end FROM live_figures WHERE version = ?", (version,)
        ).fetchone()
        return None if row is None else (json.loads(row[0]), float(row[1]), float(row[2]))

    def _pooled(self, version: str, rows: list[Joined]) -> list[Joined]:
        """``rows`` added to ``version``'s pool, which keeps its last ``evaluations``
        evaluations (only the two newest versions keep one); the pool's rows."""
        (latest,) = self._db.execute(
            "SELECT coalesce(max(evaluation), 0) + 1 FROM live_rows WHERE version = ?",
            (version,),
        ).fetchone()
        self._db.executemany(
            "INSERT INTO live_rows (version, evaluation, event_time, score, decision, is_fraud)"
            " VALUES (?,?,?,?,?,?)",
            [(version, latest, *row) for row in rows],
        )
        self._db.execute(
            "DELETE FROM live_rows WHERE version = ? AND evaluation <= ?",
            (version, latest - self._policy.rollback.evaluations),
        )
        self._db.execute(
            "DELETE FROM live_rows WHERE version != ? AND version NOT IN"
            " (SELECT version FROM live_figures WHERE version != ? ORDER BY seq DESC LIMIT 1)",
            (version, version),
        )
        pooled = self._db.execute(
            "SELECT event_time, score, decision, is_fraud FROM live_rows WHERE version = ?"
            " ORDER BY evaluation, rowid",
            (version,),
        ).fetchall()
        return [(float(t), float(p), int(d), int(y)) for t, p, d, y in pooled]

    def evaluated(self, version: str, rows: list[Joined]) -> Watched | None:
        """Inside the batch's transaction: add an evaluation's rows to ``version``'s pool
        (its last ``rollback.evaluations`` evaluations) and keep the pool's figures, arm
        its watch if this is its first evaluation after another version's (the other's
        pooled figures, frozen), and judge its pool while the watch is armed: one
        evaluation alone (2000 labels, 20-60 frauds, fraud in episodes) varies too much
        to tell a regression from a bad day. Returns the judgement, if one was made."""
        first = self.figures(version) is None
        rows = self._pooled(version, rows)
        metrics = performance_metrics(rows)
        times = [r[0] for r in rows]
        previous = self._db.execute(
            "SELECT version, metrics, start, end FROM live_figures WHERE version != ?"
            " ORDER BY seq DESC LIMIT 1",
            (version,),
        ).fetchone()
        if first and previous is not None:
            self._db.execute(
                "INSERT OR IGNORE INTO rollback_watch (version, previous, previous_metrics,"
                " previous_start, previous_end) VALUES (?,?,?,?,?)",
                (version, *previous),
            )
        self._db.execute(
            "INSERT INTO live_figures (version, seq, metrics, start, end) VALUES"
            " (?, (SELECT coalesce(max(seq), 0) + 1 FROM live_figures), ?, ?, ?)"
            " ON CONFLICT (version) DO UPDATE SET seq = excluded.seq,"
            " metrics = excluded.metrics, start = excluded.start, end = excluded.end",
            (version, json.dumps(metrics), min(times), max(times)),
        )
        watch = self._db.execute(
            "SELECT previous, previous_metrics, previous_start, previous_end, evaluations"
            " FROM rollback_watch WHERE version = ? AND closed IS NULL",
            (version,),
        ).fetchone()
        if watch is None or not self._policy.rollback.enabled:
            return None
        prev, prev_metrics, prev_start, prev_end, done = watch
        judged = self._judge(version, str(prev), (json.loads(prev_metrics), prev_start, prev_end),
                             (metrics, min(times), max(times)), int(done) + 1)  # fmt: skip
        closed = "regressed" if judged.event is not None else None
        if closed is None and judged.evaluation >= self._policy.rollback.evaluations:
            closed = "cleared"
        self._db.execute(
            "UPDATE rollback_watch SET evaluations = ?, closed = ? WHERE version = ?",
            (judged.evaluation, closed, version),
        )
        if closed is not None:
            judged = Watched(judged.version, judged.previous, judged.evaluation, judged.verdict,
                             judged.comparisons, False, judged.event)  # fmt: skip
        self.judged.append(judged)
        return judged

    def _judge(
        self, version: str, previous: str, before: Figures, now: Figures, evaluation: int
    ) -> Watched:
        spec = self._policy.rollback
        old, new = before[0], now[0]
        small = [
            f"{name} {int(m.get('rows', 0))} rows, {int(m.get('positives', 0))} positives"
            for name, m in ((previous, old), (version, new))
            if m.get("rows", 0) < spec.min_rows or m.get("positives", 0) < spec.min_positives
        ]
        if small:
            return Watched(version, previous, evaluation, "too_few", [], True, None)
        tests = compare_metrics(new, old, spec.test_spec(self._policy.performance))
        comparisons = [
            MetricRegression(metric=t.metric, previous=t.reference, current=t.current,
                             standard_error=t.standard_error, p_worse=t.p_adjusted,
                             min_difference=t.max_drop)
            for t in tests
        ]  # fmt: skip
        down = sorted(t.metric for t in tests if t.degraded)
        if not down:
            return Watched(version, previous, evaluation, "not_worse", comparisons, True, None)
        regression = Regression(
            previous_version=previous, evaluation=evaluation, rows=int(new["rows"]),
            positives=int(new["positives"]), previous_rows=int(old["rows"]),
            previous_positives=int(old["positives"]),
            previous_window=Window(start=_utc(before[1]), end=_utc(before[2]),
                                   row_count=int(old["rows"])),
            metrics=new, previous_metrics=old, comparisons=comparisons,
            reason=f"significantly below {previous}'s last live figures on {', '.join(down)}",
        )  # fmt: skip
        flat = {"rows": new["rows"], "positives": new["positives"], "evaluation": evaluation}
        for c in comparisons:
            flat[f"previous_{c.metric}"], flat[f"current_{c.metric}"] = c.previous, c.current
            flat[f"p_worse_{c.metric}"] = c.p_worse
        event = DriftEvent(
            kind="rollback", model_name=self._policy.model, model_version=version,
            window=Window(start=_utc(now[1]), end=_utc(now[2]), row_count=int(new["rows"])),
            reference_profile=f"models:/{self._policy.model}/{previous}", metrics=flat,
            regression=regression,
        )  # fmt: skip
        return Watched(version, previous, evaluation, "regressed", comparisons, True, event)
