"""The demo's reading of Prometheus' ALERTS series: stretches of firing from sampled steps."""

from __future__ import annotations

from driftloop_demo._alerts import STEP_S, _spans


def test_a_stretch_that_ends_before_the_query_is_resolved_one_step_after_its_last_sample():
    [span] = _spans("DriftloopDataDrift", "fraud", [10.0, 11.0, 12.0], end=20.0)
    assert span.fired_at.timestamp() == 10.0
    assert span.resolved_at is not None and span.resolved_at.timestamp() == 12.0 + STEP_S


def test_a_stretch_that_reaches_the_last_step_is_still_firing():
    [span] = _spans("DriftloopDataDrift", "fraud", [10.0, 11.0, 12.0], end=12.5)
    assert span.resolved_at is None
    assert "still firing" in span.line()


def test_a_missing_step_splits_two_stretches():
    first, second = _spans("DriftloopPerformanceDrop", "fraud", [1.0, 2.0, 5.0, 6.0], end=30.0)
    assert (first.fired_at.timestamp(), first.resolved_at and first.resolved_at.timestamp()) == (
        1.0,
        3.0,
    )
    assert second.fired_at.timestamp() == 5.0 and second.resolved_at is not None


def test_no_samples_no_stretch():
    assert _spans("DriftloopDataDrift", "fraud", [], end=10.0) == []
