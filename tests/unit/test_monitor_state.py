"""The monitor's state on a real SQLite checkpoint: windows, the label join, bad values."""

from __future__ import annotations

import math

from driftloop_monitor._checkpoint import Checkpoint
from driftloop_monitor._frame import Row, window_frame
from driftloop_monitor._join import DAY, LabelJoin
from driftloop_monitor._windows import Windows

from driftloop.drift import PerformanceSpec, WindowSpec


def _windows(tmp_path, **spec) -> tuple[Checkpoint, Windows]:
    checkpoint = Checkpoint(tmp_path / "c.sqlite")
    return checkpoint, Windows(WindowSpec.model_validate(spec), checkpoint)


def test_count_windows_close_at_their_size_and_survive_a_restart(tmp_path):
    _, windows = _windows(tmp_path, rows=3, min_rows=1)
    added = [windows.add(0, "v1", float(t), 0.5, {"x": t}) for t in range(5)]
    closed = [c for _, c in added]
    assert [c is not None for c in closed] == [False, False, True, False, False]
    third = closed[2]
    assert third is not None and [r.features["x"] for r in third.rows] == [0, 1, 2]
    # each row's sequence number is the one its window holds it by
    assert [r.seq for r in third.rows] == [seq for seq, _ in added[:3]]
    windows.save()
    again = Windows(WindowSpec(rows=3, min_rows=1), Checkpoint(tmp_path / "c.sqlite"))
    assert [r.features["x"] for r in again.open[("v1", 0)]] == [3, 4]
    seq, done = again.add(1, "v1", 5.0, 0.5, {"x": 5})
    assert done is not None
    assert [r.features["x"] for r in done.rows] == [3, 4, 5]
    assert [r.seq for r in done.rows] == [added[3][0], added[4][0], seq]


def test_aligned_windows_wait_for_the_slowest_partition_and_count_late_rows(tmp_path):
    _, windows = _windows(tmp_path, rows=None, duration_s=10, lateness_s=5, min_rows=1)
    windows.add(1, "v1", 0.0, 0.1, {})
    for t in range(0, 40):  # partition 0 is read far ahead
        windows.add(0, "v1", float(t), 0.1, {})
    assert windows.expire() == []  # partition 1 is at 0 s: window [0, 10) still open
    windows.add(1, "v1", 3.0, 0.1, {})
    assert windows.expire() == []
    windows.add(1, "v1", 16.0, 0.1, {})
    (first,) = windows.expire()
    assert (first.start.timestamp(), first.end.timestamp(), len(first.rows)) == (0, 10, 12)
    assert windows.add(1, "v1", 9.0, 0.1, {}) == (None, None)
    assert windows.late == 1


def test_labels_join_in_either_order_within_the_horizon(tmp_path):
    checkpoint = Checkpoint(tmp_path / "c.sqlite")
    join = LabelJoin(checkpoint, PerformanceSpec(labels=10, horizon_days=2, max_awaiting=3))
    assert join.prediction("t1", "v1", 0.0, 0.9, True) is None
    assert join.label("t1", True, DAY) == "v1"
    assert join.label("t2", False, DAY) is None  # label first
    assert join.prediction("t2", "v1", 0.5 * DAY, 0.1, False) == "v1"
    join.prediction("t3", "v1", 0.0, 0.2, False)
    assert join.label("t3", False, 3 * DAY) is None and join.counts.expired == 1
    for i in range(5):
        join.prediction(f"w{i}", "v1", 10.0 * DAY + i, 0.3, False)
    join.prune(newest_prediction=10 * DAY, newest_label=0.0)
    assert join.waiting() == 3 and join.counts.evicted == 2
    assert join.counts.joined == 2


def test_bad_values_are_counted_and_kept_out_of_the_numbers():
    rows = [
        Row(1, 0.0, 0.2, {"x": 1.5, "c": "a"}),
        Row(2, 0.0, 0.2, {"x": math.nan, "c": "new"}),
        Row(3, 0.0, 0.2, {"x": math.inf, "c": None}),
        Row(4, 0.0, 0.2, {"x": "oops"}),
        Row(5, 0.0, 0.2, {"x": None, "c": 7}),
    ]
    frame, quality = window_frame(rows, ["x"], {"c": frozenset({"a", "b"})})
    assert quality["x"] == {"missing": 1, "nan": 1, "inf": 1, "invalid": 1, "unseen": 0}
    assert quality["c"] == {"missing": 2, "nan": 0, "inf": 0, "invalid": 0, "unseen": 2}
    assert frame["x"].notna().sum() == 1 and math.isfinite(frame["x"].max())
    assert list(frame["c"]) == ["a", "new", None, None, "7"]
    assert list(frame["score"]) == [0.2] * 5
