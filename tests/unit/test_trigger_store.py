"""The trigger's SQLite state: decisions claimed once per event id with the offsets, the
outbox of submissions and workflow events, and the history the policy reads."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

import pytest
from driftloop_trigger import Decision, DecisionStore

from driftloop.events import DriftEvent, Window

T0 = datetime(2026, 6, 1, tzinfo=UTC)


def event(i: int, *, model: str = "fraud", kind: str = "data_drift") -> DriftEvent:
    start = T0 + timedelta(minutes=10 * i)
    return DriftEvent(
        kind=kind,
        model_name=model,
        model_version="v1",
        reference_profile="models:/fraud/v1/ref",
        window=Window(start=start, end=start + timedelta(minutes=10), row_count=100),
    )


def submit_first(db: sqlite3.Connection, e: DriftEvent) -> tuple[Decision, str, dict[str, str]]:
    """Submit unless a run is pending for the model or was submitted for the window."""
    pending, _, window_run = DecisionStore.history(db, e, T0 - timedelta(days=1))
    blocker = pending[0] if pending else window_run
    if blocker is not None:
        return Decision("skip", "active_run", f"run {blocker}"), f"r-{e.event_id}", {}
    return Decision("submit", "severe", "test"), f"r-{e.event_id}", {"model": e.model_name}


def test_each_event_id_is_decided_once_with_the_offsets(tmp_path):
    store = DecisionStore(tmp_path / "d.sqlite")
    first = [event(0), event(1)]
    decided, duplicates = store.record("t", first, {0: 2}, submit_first, T0)
    assert [d.outcome for _, d in decided] == ["submit", "skip"] and duplicates == 0
    decided, duplicates = store.record(
        "t", [event(1), event(0), event(2)], {0: 5}, submit_first, T0
    )
    assert [e.event_id for e, _ in decided] == [event(2).event_id] and duplicates == 2
    assert store.offsets("t") == {0: 5}
    assert len(list(store.decisions("fraud"))) == 3
    store.close()
    reopened = DecisionStore(tmp_path / "d.sqlite")  # durable across processes
    assert [r.outcome for r in reopened.decisions()] == ["submit", "skip", "skip"]
    assert reopened.offsets("t") == {0: 5}


def test_a_failure_while_deciding_records_nothing(tmp_path):
    store = DecisionStore(tmp_path / "d.sqlite")
    store.record("t", [event(0)], {0: 1}, submit_first, T0)

    def fail_on_second(db, e):
        if e.event_id == event(2).event_id:
            raise RuntimeError("crash half-way through a batch")
        return submit_first(db, e)

    with pytest.raises(RuntimeError):
        store.record("t", [event(1), event(2)], {0: 3}, fail_on_second, T0)
    assert store.offsets("t") == {0: 1}  # the batch is read again
    assert [r.event_id for r in store.decisions()] == [event(0).event_id]
    decided, duplicates = store.record("t", [event(1), event(2)], {0: 3}, submit_first, T0)
    assert len(decided) == 2 and duplicates == 0  # their ids were not claimed


def test_the_outbox_holds_a_submission_until_accepted_and_events_until_published(tmp_path):
    store = DecisionStore(tmp_path / "d.sqlite")
    store.record("t", [event(0), event(1)], {0: 2}, submit_first, T0)
    [pending] = store.pending()
    assert pending.event_id == event(0).event_id and pending.parameters == {"model": "fraud"}
    # Only the skip may be announced before the run is submitted.
    assert [r.outcome for r in store.unpublished()] == ["skip"]
    store.mark_failed_attempt(pending.event_id, "ray is away")
    assert store.pending()[0].attempts == 1
    store.mark_submitted(pending.event_id, created=False, backend="local", at=T0)
    assert store.pending() == []
    assert [r.outcome for r in store.unpublished()] == ["submit", "skip"]
    assert store.unpublished()[0].created is False
    store.mark_published([r.event_id for r in store.unpublished()])
    assert store.unpublished() == []


def test_history_sees_pending_runs_recent_submissions_and_covered_windows(tmp_path):
    store = DecisionStore(tmp_path / "d.sqlite")
    store.record("t", [event(0)], {0: 1}, submit_first, T0)
    other_kind = event(0, kind="performance_degraded")  # same model version and window
    seen = {}
    since = [T0 - timedelta(hours=1)]

    def look(db, e):
        seen[e.event_id] = DecisionStore.history(db, e, since[0])
        return submit_first(db, e)

    store.record("t", [other_kind, event(1, model="fraud-lite")], {0: 3}, look, T0)
    pending, submitted, window_run = seen[other_kind.event_id]
    run = f"r-{event(0).event_id}"
    assert pending == [run] and window_run == run
    assert submitted == [(run, T0)]
    assert seen[event(1, model="fraud-lite").event_id] == ([], [], None)  # another model
    store.mark_submitted(event(0).event_id, created=True, backend="local", at=T0)
    since[0] = T0 + timedelta(hours=1)
    store.record("t", [event(3)], {0: 4}, look, T0 + timedelta(hours=2))
    # Submitted, so no longer pending; decided before the horizon, so not recent either.
    assert seen[event(3).event_id] == ([], [], None)
