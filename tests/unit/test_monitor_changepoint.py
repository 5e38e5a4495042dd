"""The change point and the labelled evidence a drift event carries, on a real SQLite
checkpoint and real whylogs judgements: streak starts, their reset, the earliest of data
and performance, counts equal to a brute-force count, and exact after a crash."""

from __future__ import annotations

import json
import math
import random
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from driftloop_monitor._changepoint import ChangePoints, evaluation_start
from driftloop_monitor._checkpoint import Checkpoint, Joined
from driftloop_monitor._frame import Row
from driftloop_monitor._join import BUCKET_S, DAY, LabelJoin
from driftloop_monitor._judge import Judged, judge_drift, judge_performance
from driftloop_monitor._references import Reference
from driftloop_monitor._windows import ClosedWindow

from driftloop.drift import AuditStore, MonitorPolicy, PerformanceSpec
from driftloop.profiles import SCORE_COLUMN, profile_frame

T0 = 1_800_000_000.0  # 2027-01-15
POLICY = MonitorPolicy.model_validate(
    {
        "model": "fraud",
        "window": {"rows": 400, "min_rows": 100},
        "drift": {"score": False, "consecutive_windows": 2},
        "performance": {"labels": 200, "min_positives": 10, "consecutive_windows": 1,
                        "max_drop": {"roc_auc": 0.05}},
    }
)  # fmt: skip


def _reference() -> Reference:
    rng = np.random.default_rng(0)
    features = profile_frame(pd.DataFrame({"x": rng.normal(0.0, 1.0, 20_000)}))
    scores = profile_frame(pd.DataFrame({SCORE_COLUMN: rng.uniform(0.0, 1.0, 20_000)}))
    metrics = {"roc_auc": 0.95, "rows": 20_000.0, "positives": 2_000.0}
    return Reference("v1", features, scores, ["x"], {}, metrics,
                     "models:/fraud/v1/reference", "models:/fraud/v1/metadata.json")  # fmt: skip


class _Monitor:
    """The service's judging steps (``_close``, ``_evaluate``) on a real checkpoint."""

    def __init__(self, path: Path, ref: Reference) -> None:
        self.checkpoint = Checkpoint(path)
        self.join = LabelJoin(self.checkpoint, POLICY.performance)
        self.changes = ChangePoints(self.checkpoint, self.join)
        self.ref = ref

    def close(self, window: ClosedWindow) -> Judged:
        with self.checkpoint.transaction():
            before, _ = self.checkpoint.streak(window.version, "data")
            judged, streak = judge_drift(POLICY, window, self.ref, before)
            self.checkpoint.set_streak(window.version, "data", streak)
            return self.changes.follow("data", before, window.start.timestamp(), judged)

    def evaluate(self, rows: list[Joined]) -> Judged:
        with self.checkpoint.transaction():
            before, since = self.checkpoint.streak("v1", "performance")
            judged, streak = judge_performance(POLICY, "v1", rows, self.ref, before)
            self.checkpoint.set_streak("v1", "performance", streak, since)
            start = evaluation_start([r[0] for r in rows])
            return self.changes.follow("performance", before, start, judged)


def _window(start: float, shift: float, n: int = 400, seed: int = 0) -> ClosedWindow:
    rng = np.random.default_rng(seed)
    times = start + np.arange(n) * 2.0
    values = rng.normal(shift, 1.0, n)
    rows = [Row(i, float(times[i]), 0.5, {"x": float(values[i])}) for i in range(n)]
    return ClosedWindow("v1", _utc(start), _utc(float(times[-1])), rows)


def _utc(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def _evaluation(times: list[float], auc_like: bool, seed: int = 0) -> list[Joined]:
    """Rows (time, score, decision, is_fraud): separated scores, or scores that ignore y."""
    rng = np.random.default_rng(seed)
    y = rng.random(len(times)) < 0.2
    scores = rng.normal(0.0, 1.0, len(times)) + (4.0 * y if auc_like else 0.0)
    return [(t, float(s), int(s > 1.0), int(f)) for t, s, f in zip(times, scores, y, strict=True)]


def test_the_change_point_is_the_first_drifted_window_of_the_streak(tmp_path):
    ref = _reference()
    monitor = _Monitor(tmp_path / "c.sqlite", ref)
    starts = [T0 + 3600.0 * k for k in range(8)]
    ok0 = monitor.close(_window(starts[0], 0.0, seed=1))
    assert ok0.record.verdict == "no_drift" and ok0.record.change_point is None
    first = monitor.close(_window(starts[1], 1.0, seed=2))
    assert first.record.verdict == "drift" and first.event is None  # two in a row are needed
    assert first.record.change_point == _utc(starts[1])
    monitor.checkpoint.db.close()  # the start survives a restart
    monitor = _Monitor(tmp_path / "c.sqlite", ref)
    second = monitor.close(_window(starts[2], 1.0, seed=3))
    assert second.event is not None and second.event.change_point == _utc(starts[1])
    small = monitor.close(_window(starts[3], 1.0, n=50, seed=4))  # not judged: no reset
    assert small.record.verdict == "too_small" and small.record.change_point == _utc(starts[1])
    third = monitor.close(_window(starts[4], 1.0, seed=5))
    assert third.event is not None and third.event.change_point == _utc(starts[1])
    calm = monitor.close(_window(starts[5], 0.0, seed=6))  # the streak breaks
    assert calm.record.verdict == "no_drift" and calm.record.change_point is None
    assert monitor.changes.estimate("v1") is None
    again = monitor.close(_window(starts[6], 1.0, seed=7))
    assert again.event is None and again.record.change_point == _utc(starts[6])
    rng, labelled = random.Random(0), []
    with monitor.checkpoint.transaction():  # labels of the hours around the change
        for k, t in enumerate(np.arange(starts[5], starts[7], 30.0)):
            fraud = rng.random() < 0.1
            monitor.join.prediction(f"t{k}", "v1", float(t), 0.5, fraud)
            monitor.join.label(f"t{k}", fraud, float(t) + 60.0)
            labelled.append((float(t), int(fraud)))
    last = monitor.close(_window(starts[7], 1.0, seed=8))
    assert last.event is not None and last.event.change_point == _utc(starts[6])
    assert last.event.event_id == last.record.event_id  # the id still derives from the window
    assert last.event.evidence is not None and last.event.evidence.since == _utc(starts[6])
    counts = _brute(labelled, starts[6])
    assert (last.event.evidence.labelled_rows, last.event.evidence.positives) == counts
    assert 0 < counts[1] < counts[0] < len(labelled)
    assert last.record.evidence == last.event.evidence
    # The audit keeps the change point and reads records written before it existed.
    store = AuditStore(tmp_path / "audit", "fraud")
    path = store.write(last.record)
    assert store.find(last.event.event_id) == last.record
    raw = last.record.model_dump(mode="json")
    del raw["change_point"], raw["evidence"]
    path.write_text(json.dumps(raw))
    (old,) = store.records()
    assert old.change_point is None and old.evidence is None and old.event_id == raw["event_id"]


def test_the_change_point_is_the_earliest_of_data_and_performance_and_ignores_late_labels(
    tmp_path,
):
    monitor = _Monitor(tmp_path / "c.sqlite", _reference())
    good = monitor.evaluate(_evaluation([T0 + t for t in range(200)], True))
    assert good.record.verdict == "ok" and good.record.change_point is None
    # A degraded evaluation of predictions from 10 000 s on, three of them weeks older (late
    # chargebacks): the change point starts with the bulk, not the stragglers.
    times = [T0 + 10_000 - 20 * DAY - k for k in range(3)]
    times += [T0 + 10_000 + 5 * k for k in range(197)]
    random.Random(0).shuffle(times)
    bad = monitor.evaluate(_evaluation(times, False, seed=1))
    assert bad.record.verdict == "degraded" and bad.event is not None
    assert bad.record.start < _utc(T0)  # the window itself reaches back to the stragglers
    assert bad.event.change_point is not None
    assert _utc(T0 + 10_000) <= bad.event.change_point <= _utc(T0 + 10_000 + 5 * 10)
    perf_start = bad.event.change_point
    drift = monitor.close(_window(T0 + 20_000, 1.0, seed=2))
    assert drift.record.verdict == "drift" and drift.record.change_point == perf_start
    drift = monitor.close(_window(T0 + 30_000, 1.0, seed=3))
    assert drift.event is not None and drift.event.change_point == perf_start  # the earliest
    healed = monitor.evaluate(_evaluation([T0 + 40_000 + t for t in range(200)], True, seed=4))
    assert healed.record.verdict == "ok" and healed.record.change_point == _utc(T0 + 20_000)
    later = monitor.close(_window(T0 + 50_000, 1.0, seed=5))
    assert later.event is not None and later.event.change_point == _utc(T0 + 20_000)
    calm = monitor.close(_window(T0 + 60_000, 0.0, seed=6))
    assert calm.record.change_point is None and calm.event is None
    # The earliest again, the other way round: data first, performance second.
    monitor.close(_window(T0 + 70_000, 1.0, seed=7))
    worse = monitor.evaluate(_evaluation([T0 + 80_000 + t for t in range(200)], False, seed=8))
    assert worse.event is not None and worse.event.change_point == _utc(T0 + 70_000)


def test_a_checkpoint_from_before_streak_starts_opens_and_learns_them(tmp_path):
    import sqlite3

    old = sqlite3.connect(tmp_path / "c.sqlite")
    old.execute("CREATE TABLE streaks (version TEXT NOT NULL, kind TEXT NOT NULL,"
                " streak INTEGER NOT NULL, since_eval INTEGER NOT NULL DEFAULT 0,"
                " PRIMARY KEY (version, kind))")  # fmt: skip
    old.execute("INSERT INTO streaks VALUES ('v1', 'data', 1, 0)")
    old.commit()
    old.close()
    monitor = _Monitor(tmp_path / "c.sqlite", _reference())
    assert monitor.checkpoint.streak("v1", "data") == (1, 0)
    assert monitor.changes.estimate("v1") is None  # running, start unknown
    judged = monitor.close(_window(T0, 1.0, seed=1))  # the best known start: this window's
    assert judged.event is not None and judged.event.change_point == _utc(T0)


def _brute(
    joined: list[tuple[float, int]], since: float, floor_t: float = -math.inf
) -> tuple[int, int]:
    kept = [
        f for t, f in joined
        if math.floor(t / BUCKET_S) >= max(math.floor(since / BUCKET_S), floor_t)
    ]  # fmt: skip
    return len(kept), sum(kept)


Records = list[tuple[str, str, float, int]]
"""kind ("prediction" or "label"), transaction id, event time, is_fraud"""


def _traffic(seed: int, n: int) -> tuple[Records, list[tuple[float, int]]]:
    """Predictions and labels of ``n`` transactions in a random order (either may come
    first), and the (prediction time, is_fraud) of those that join within the horizon."""
    rng = random.Random(seed)
    records: Records = []
    joined: list[tuple[float, int]] = []
    for i in range(n):
        t = rng.uniform(0, 3 * DAY)
        records.append(("prediction", f"t{i}", t, 0))
        if rng.random() < 0.1:
            continue  # never labelled
        delay, fraud = rng.expovariate(1 / (0.5 * DAY)), int(rng.random() < 0.1)
        records.append(("label", f"t{i}", t + delay, fraud))
        if delay <= DAY:
            joined.append((t, fraud))
    rng.shuffle(records)
    return records, joined


def _feed(join: LabelJoin, checkpoint: Checkpoint, records: Records, batch: int = 100) -> None:
    for at in range(0, len(records), batch):
        with checkpoint.transaction():
            for kind, tid, t, fraud in records[at : at + batch]:
                if kind == "prediction":
                    version = join.prediction(tid, "v1", t, 0.5, False)
                else:
                    version = join.label(tid, bool(fraud), t)
                if version is not None:
                    join.due(version)  # the service evaluates (and lets joined rows go)


SPEC = PerformanceSpec(labels=50, horizon_days=1, max_awaiting=1_000_000)


@pytest.mark.parametrize("seed", [0, 1])
def test_evidence_equals_a_brute_force_count_of_the_joins(tmp_path, seed):
    checkpoint = Checkpoint(tmp_path / "c.sqlite")
    join = LabelJoin(checkpoint, SPEC)
    records, joined = _traffic(seed, 3000)
    _feed(join, checkpoint, records)
    assert join.counts.joined == len(joined) and 0 < sum(f for _, f in joined) < len(joined)
    rng = random.Random(seed)
    for since in [-1.0, 0.0, 1.5 * DAY, 3 * DAY + 1, *(rng.uniform(0, 3 * DAY) for _ in range(30))]:
        assert join.evidence(since) == _brute(joined, since), since
    # Minutes older than the horizon behind the newest event time are let go, no others.
    newest = 2.5 * DAY + 30.0
    with checkpoint.transaction():
        join.prune(newest_prediction=newest, newest_label=newest - 3600.0)
    oldest = math.floor((newest - DAY) / BUCKET_S)
    assert join.evidence(0.0) == _brute(joined, 0.0, oldest) != _brute(joined, 0.0)
    assert join.evidence(0.0)[0] > len(joined) / 3
    assert join.evidence(2 * DAY) == _brute(joined, 2 * DAY)
    (buckets,) = checkpoint.db.execute("SELECT count(*) FROM labelled").fetchone()
    assert buckets <= DAY / BUCKET_S + 1


class _Crash(BaseException):
    """The process dying in the middle of a batch (not an ``Exception``: nothing handles it)."""


def _consume(path: Path, records: Records, batch: int, crash_after: int | None = None) -> None:
    """Like the service, from the checkpoint's offset on: each batch's joins and its next
    offset commit together; a crash may come in the middle of a batch."""
    checkpoint = Checkpoint(path)
    join = LabelJoin(checkpoint, SPEC)
    at = checkpoint.offsets("labels+predictions").get(0, 0)
    handled = 0
    try:
        while at < len(records):
            with checkpoint.transaction():
                for kind, tid, t, fraud in records[at : at + batch]:
                    if kind == "prediction":
                        join.prediction(tid, "v1", t, 0.5, False)
                    else:
                        join.label(tid, bool(fraud), t)
                    handled += 1
                    if handled == crash_after:
                        raise _Crash
                at = min(at + batch, len(records))
                checkpoint.save_offsets("labels+predictions", {0: at})
    finally:
        checkpoint.db.close()


def test_counts_stay_exact_when_a_batch_is_replayed_after_a_crash(tmp_path):
    path = tmp_path / "c.sqlite"
    records, joined = _traffic(7, 2000)
    with pytest.raises(_Crash):
        _consume(path, records, 250, crash_after=1610)
    checkpoint = Checkpoint(path)  # a restart
    assert checkpoint.offsets("labels+predictions") == {0: 1500}  # six batches committed
    committed = LabelJoin(checkpoint, SPEC).evidence(-1.0)
    assert 0 < committed[0] < len(joined)
    checkpoint.db.close()
    _consume(path, records, 250)  # the seventh batch again, then the rest
    join = LabelJoin(Checkpoint(path), SPEC)
    for since in [-1.0, 0.7 * DAY, 2.2 * DAY]:
        assert join.evidence(since) == _brute(joined, since)


def test_a_stream_off_its_reference_from_the_start_dates_the_change_where_it_worsened(tmp_path):
    """A stream a little off its reference from the first window on (a window sees part of
    a day, the reference whole days) drifts from its first window; the change that comes
    later is dated where the version's own series worsened, not to the first window."""
    from driftloop_monitor._changepoint import split_point

    monitor = _Monitor(tmp_path / "c.sqlite", _reference())
    starts = [T0 + 3600.0 * k for k in range(7)]
    shifts = [0.4, 0.4, 0.4, 2.0, 2.0, 2.0, 2.0]
    pairs = enumerate(zip(starts, shifts, strict=True))
    judged = [monitor.close(_window(t, x, seed=k)) for k, (t, x) in pairs]
    assert all(j.record.verdict == "drift" for j in judged)
    assert judged[1].event is not None and judged[1].event.change_point == _utc(starts[0])
    assert judged[-1].event is not None and judged[-1].event.change_point == _utc(starts[3])
    # the split needs a clearly worse later level: a flat or improving series has none
    assert split_point([(0.0, 0.3), (1.0, 0.31), (2.0, 0.29), (3.0, 0.3)], worse=1) is None
    assert split_point([(0.0, 0.9), (1.0, 0.9), (2.0, 0.2), (3.0, 0.2)], worse=1) is None
    assert split_point([(0.0, 0.9), (1.0, 0.9), (2.0, 0.2), (3.0, 0.2)], worse=-1) == 2.0


def test_a_streak_after_a_calm_window_is_dated_by_its_first_window_not_its_worst(tmp_path):
    """The window that holds the onset is only partly changed, the next one fully: after a
    calm window the change began with the streak, not at the bigger step that followed."""
    monitor = _Monitor(tmp_path / "c.sqlite", _reference())
    starts = [T0 + 3600.0 * k for k in range(5)]
    shifts = [0.0, 0.0, 0.6, 2.0, 2.0]
    pairs = enumerate(zip(starts, shifts, strict=True))
    judged = [monitor.close(_window(t, x, seed=k)) for k, (t, x) in pairs]
    assert [j.record.verdict for j in judged] == ["no_drift"] * 2 + ["drift"] * 3
    assert judged[-1].event is not None and judged[-1].event.change_point == _utc(starts[2])
