"""When the demo's SIGKILLs fire, and which names it accepts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from driftloop_demo import DemoConfig
from driftloop_demo._faults import FAULTS, FaultPlan
from pydantic import ValidationError

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def plan(*names: str) -> FaultPlan:
    return FaultPlan(names, traffic=T0, onset=T0 + timedelta(seconds=60))


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_timed_faults_fire_once_at_their_time_in_the_stream() -> None:
    p = plan(*FAULTS)
    assert p.due({}, at(29)) == []
    assert p.due({}, at(30)) == ["stream"]
    p.record("stream", 1)
    assert p.due({}, at(47)) == []
    assert p.due({}, at(48)) == ["replica"]
    p.record("replica", 2)
    assert p.due({}, at(79)) == []
    assert p.due({}, at(80)) == ["monitor"]
    p.record("monitor", 3)
    assert p.due({}, at(10_000)) == [], "trigger and sync wait for their step of the loop"


def test_trigger_and_sync_faults_wait_for_the_event_and_the_promotion() -> None:
    p = plan("trigger", "sync")
    assert p.due({"detected": at(200)}, at(199)) == []
    assert p.due({"detected": at(200)}, at(200)) == ["trigger"]
    p.record("trigger", 4)
    marks = {"detected": at(200), "promoted": at(400)}
    assert p.due(marks, at(300)) == []
    assert p.due(marks, at(401)) == ["sync"]
    p.record("sync", 5)
    assert p.due(marks, at(500)) == []
    assert [r.name for r in p.fired] == ["trigger", "sync"]


def test_overdue_faults_fire_together_in_order() -> None:
    assert plan(*FAULTS).due({"detected": at(1), "promoted": at(2)}, at(1000)) == list(FAULTS)


def test_the_config_accepts_known_faults_in_firing_order_and_refuses_others() -> None:
    assert DemoConfig(faults=("sync", "stream")).faults == ("stream", "sync")
    assert DemoConfig().faults == ()
    with pytest.raises(ValidationError, match=r"unknown fault\(s\) \['kafka'\]"):
        DemoConfig(faults=("stream", "kafka"))
