"""When the change behind a version's drift began, and the labelled evidence after it.

A version's change point is the earliest estimate among its running streaks. A streak
that follows a calm window (one judged within the reference) is dated by its first window:
the traffic was fine before it. A streak that has run since the version's first window
cannot be dated that way — a stream that differs a little from its reference from the
start (stale features while a service starts, a window that sees part of a day) would date
every later change to the start of traffic — so it is dated where the version's own series
of judged windows worsened: the split of the series (each window's statistic: the summed
effect of the drifted columns for data, PR-AUC for performance) that best separates an
earlier level from a clearly worse later one (the CUSUM statistic |mean before - mean
after| * sqrt(k (n - k) / n)); with fewer than three windows or no such split, by its
first window. A streak's
start is kept in its ``streaks`` row, written in the transaction that saves the streak,
and let go when the streak resets; a window that is not judged (too small, no reference)
leaves both as they are.

An evaluation's rows are the last ones labelled, in join order, and a chargeback can join
weeks after its prediction: the evaluation's oldest prediction says little about when the
traffic it judged began. Its start is the time before which only ``LATE_SHARE`` of its
rows were predicted.

A drift event carries the change point and the labelled rows and positives counted from
its minute on (``LabelJoin.evidence``), as they stand in the transaction that queues it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Literal

from driftloop.drift import WindowRecord
from driftloop.events import DriftEvent, Evidence
from driftloop_monitor._checkpoint import Checkpoint
from driftloop_monitor._join import LabelJoin
from driftloop_monitor._judge import Judged

StreakKind = Literal["data", "performance"]
LATE_SHARE = 0.05
MIN_GAP = 0.5
"""A split counts when the later level is worse than the earlier by half the larger one."""
WORSE: dict[str, int] = {"data": 1, "performance": -1}
"""More drifted effect is worse; a lower PR-AUC is."""


def streak_began(before: int, after: int, began: float | None, start: float) -> float | None:
    """When the streak, ``after`` windows long, began: the judged window's ``start`` if the
    streak begins with it (or its start is unknown), the kept ``began`` if it goes on, None
    once it is broken."""
    if after <= 0:
        return None
    if before <= 0 or began is None:
        return start
    return began


def split_point(series: Sequence[tuple[float, float]], worse: int) -> float | None:
    """The start of the first window after the best split of ``series`` ((start, value),
    oldest first): the k maximising |mean(v[:k]) - mean(v[k:])| * sqrt(k (n - k) / n),
    where the later level is worse (``worse`` = +1: higher is worse, -1: lower is) by at
    least ``MIN_GAP`` of the larger level. None for fewer than three windows or no such
    split."""
    n = len(series)
    if n < 3:
        return None
    values = [v for _, v in series]
    total, head, best, found = sum(values), 0.0, 0.0, None
    for k in range(1, n):
        head += values[k - 1]
        before, after = head / k, (total - head) / (n - k)
        gap = (after - before) * worse
        if gap < MIN_GAP * max(abs(before), abs(after), 1e-12):
            continue
        score = gap * math.sqrt(k * (n - k) / n)
        if score > best:
            best, found = score, series[k][0]
    return found


def statistic(kind: StreakKind, judged: Judged) -> float | None:
    """The number a judged window adds to its version's series, None if it has none."""
    metrics = judged.record.metrics
    if kind == "data":
        if not judged.tests:
            return None
        return float(sum(t.effect for t in judged.tests if t.drifted))
    value = metrics.get("pr_auc", metrics.get("recall_at_threshold"))
    return None if value is None or judged.record.verdict not in ("ok", "degraded") else value


def evaluation_start(times: Sequence[float]) -> float:
    """The prediction time before which only ``LATE_SHARE`` of an evaluation's rows lie."""
    ordered = sorted(times)
    return ordered[math.floor(LATE_SHARE * (len(ordered) - 1))]


def _utc(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


class ChangePoints:
    """Streak starts in the checkpoint, and the change point given to what is judged.

    ``join`` is None when the policy joins no labels: events then carry a change point
    but no evidence (none was counted, which is not the same as none existing)."""

    def __init__(self, checkpoint: Checkpoint, join: LabelJoin | None) -> None:
        self._checkpoint = checkpoint
        self._join = join

    def follow(self, kind: StreakKind, before: int, start: float, judged: Judged) -> Judged:
        """Inside the batch's transaction, once the streak after ``judged`` is saved: keep
        when the streak began, and return ``judged`` with the version's change point on its
        record and event, and on the event the evidence after it."""
        record = judged.record
        kept = self._checkpoint.streak_started(record.version, kind)
        began = streak_began(before, record.streak, kept, start)
        self._checkpoint.set_streak_started(record.version, kind, began)
        value = statistic(kind, judged)
        if value is not None:
            self._checkpoint.add_to_series(record.version, kind, start, value)
        t = self.estimate(record.version)
        if t is None:
            return judged
        change = _utc(t)
        event, evidence = judged.event, None
        if event is not None:
            if self._join is not None:
                rows, positives = self._join.evidence(t)
                evidence = Evidence(since=change, labelled_rows=rows, positives=positives)
            event = DriftEvent.model_validate(
                {**event.model_dump(), "change_point": change, "evidence": evidence}
            )
        record = WindowRecord.model_validate(
            {**record.model_dump(), "change_point": change, "evidence": evidence}
        )
        return dataclasses.replace(judged, record=record, event=event)

    def estimate(self, version: str) -> float | None:
        """The version's change point: the earliest estimate among its running streaks
        (each the split of its series, else the streak's first window), None if none
        runs."""
        found = []
        for kind, began in self._checkpoint.running(version).items():
            series = self._checkpoint.series(version, kind)
            if began is not None and any(t < began for t, _ in series):
                estimate: float | None = began  # a calm window before it: the streak dates it
            else:  # off the reference since the version's first window: where it worsened
                split = split_point(series, WORSE.get(kind, 1))
                estimate = split if split is not None else began
            if estimate is not None:
                found.append(estimate)
        return min(found) if found else None
