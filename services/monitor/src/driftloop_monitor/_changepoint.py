"""When the change behind a version's drift began, and the labelled evidence after it.

A version's change point is the earliest start among its running streaks: the start of
the first drifted window of its data streak, and of the first degraded evaluation of its
performance streak. A streak's start is kept in its ``streaks`` row, written in the
transaction that saves the streak, and let go when the streak resets; a window that is
not judged (too small, no reference) leaves both as they are.

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


def streak_began(before: int, after: int, began: float | None, start: float) -> float | None:
    """When the streak, ``after`` windows long, began: the judged window's ``start`` if the
    streak begins with it (or its start is unknown), the kept ``began`` if it goes on, None
    once it is broken."""
    if after <= 0:
        return None
    if before <= 0 or began is None:
        return start
    return began


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
        t = self._checkpoint.change_point(record.version)
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
