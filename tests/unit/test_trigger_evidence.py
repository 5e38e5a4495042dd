"""Retraining that heals: a severe event waits for labelled evidence after the change
point (up to ``max_wait``), and a run that did not heal the model is followed up instead
of silenced by the cooldown — the daily budget still caps everything.

The rules are checked on the pure ``decide``; waiting is checked through the real SQLite
decision store, reopened as a restart would."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from driftloop_trigger import (
    Decision,
    DecisionStore,
    ModelHistory,
    RunOutcome,
    TriggerPolicy,
    decide,
    load_policy,
    merge_history,
    parameters_for,
    run_outcome,
)

from driftloop.events import ColumnDrift, DriftEvent, Evidence, Window
from driftloop.runs import RunRecord, StepState, Waiting, WaitingStore, run_id_for_event

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 6, 1, tzinfo=UTC)
CHANGE = T0 - timedelta(hours=3)


def drift(i: int = 0, rows: int | None = 3000, positives: int = 40, **kw: object) -> DriftEvent:
    """The ``i``-th 10-minute window of a severe data drift of ``fraud`` v1, with that much
    evidence after the change point (``rows=None``: none, as an older monitor sends)."""
    start = T0 + timedelta(minutes=10 * i)
    found = (
        None if rows is None else Evidence(since=CHANGE, labelled_rows=rows, positives=positives)
    )
    fields: dict[str, object] = dict(
        model_name="fraud", model_version="v1", reference_profile="models:/fraud/v1/ref",
        window=Window(start=start, end=start + timedelta(minutes=10), row_count=2000),
        columns=[ColumnDrift(column="amount", algorithm="ks", statistic=0.3, category="DRIFT")],
        change_point=None if rows is None else CHANGE, evidence=found,
    )  # fmt: skip
    fields.update(kw)
    return DriftEvent.model_validate(fields)


def degraded(version: str, i: int = 0) -> DriftEvent:
    return drift(i, kind="performance_degraded", model_version=version, columns=[],
                 reference_profile=f"models:/fraud/{version}/metadata.json",
                 metrics={"drop_roc_auc": 0.1})  # fmt: skip


def policy(**changes: object) -> TriggerPolicy:
    raw: dict[str, object] = {
        "model": "fraud", "cooldown": "6h", "daily_budget": 3,
        "evidence": {"min_labelled_rows": 3000, "min_positives": 40, "max_wait": "4h"},
    }  # fmt: skip
    raw.update(changes)
    return TriggerPolicy.model_validate(raw)


def run(run_id: str, created: datetime, status: str, promote: dict[str, object] | None = None,
        failed_step: str | None = None) -> RunRecord:  # fmt: skip
    steps = {
        name: StepState(name=name, status="failed" if name == failed_step else "succeeded")
        for name in ("build-dataset", "train", "evaluate", "register", "promote")
    }
    if promote is not None:
        steps["promote"].result = json.dumps(promote)
    return RunRecord(run_id=run_id, workflow="driftloop-retrain", model="fraud", parameters={},
                     status=status, created_at=created, steps=steps)  # fmt: skip


# -- the policy -----------------------------------------------------------------------------
def test_the_fraud_policy_waits_for_thousands_of_rows_and_tens_of_positives():
    rule = load_policy(ROOT / "deploy" / "apps" / "fraud" / "trigger.yaml").evidence
    assert 1000 <= rule.min_labelled_rows <= 10_000 and 10 <= rule.min_positives <= 100
    assert timedelta(hours=1) <= rule.max_wait <= timedelta(hours=12)
    # At the fraud rates the loop sees (1-5 %), the minimum rows can hold the positives.
    assert rule.min_positives <= 0.05 * rule.min_labelled_rows
    with pytest.raises(ValueError, match="min_rows"):
        policy(evidence={"min_rows": 10})
    with pytest.raises(ValueError, match="negative"):
        policy(evidence={"max_wait": -1})
    assert not TriggerPolicy(model="fraud").evidence.holds  # no section: never waits


# -- waiting for evidence -------------------------------------------------------------------
@pytest.mark.parametrize(("rows", "positives"), [(2999, 40), (3000, 39), (812, 14)])
def test_an_event_below_either_minimum_waits_and_says_by_how_much(rows, positives):
    decision = decide(drift(rows=rows, positives=positives), policy(), ModelHistory(), T0)
    assert (decision.outcome, decision.reason) == ("wait", "waiting_for_evidence")
    assert f"{rows}/3000 labelled rows, {positives}/40 positives" in decision.detail
    assert "max wait until 2026-06-01 04:00:00" in decision.detail


def test_an_event_at_the_minimum_submits():
    decision = decide(drift(rows=3000, positives=40), policy(), ModelHistory(), T0)
    assert (decision.outcome, decision.reason) == ("submit", "severe")
    assert "evidence 3000/3000 labelled rows, 40/40 positives" in decision.detail
    waited = ModelHistory(waiting_since=T0 - timedelta(hours=1))  # a later event suffices
    assert decide(drift(rows=5000, positives=90), policy(), waited, T0).reason == "severe"


def test_past_max_wait_the_latest_held_event_submits_and_says_why():
    history = ModelHistory(waiting_since=T0)
    thin = drift(rows=812, positives=14)
    early = decide(thin, policy(), history, T0 + timedelta(hours=4) - timedelta(seconds=1))
    assert early.outcome == "wait" and "waiting since 2026-06-01 00:00:00" in early.detail
    late = decide(thin, policy(), history, T0 + timedelta(hours=4, minutes=5))
    assert (late.outcome, late.reason) == ("submit", "max_wait")
    assert late.message.startswith(
        "max_wait: waited 4h05m since 2026-06-01 00:00:00; evidence 812 rows, 14 positives"
        " < minimum 3000 rows, 40 positives"
    )
    now = decide(thin, policy(evidence={"min_positives": 40, "max_wait": 0}), ModelHistory(), T0)
    assert now.reason == "max_wait"  # max_wait 0: never holds


def test_an_event_without_evidence_submits_as_before_and_says_so():
    decision = decide(drift(rows=None), policy(), ModelHistory(), T0)
    assert (decision.outcome, decision.reason) == ("submit", "severe")
    assert "carries no evidence" in decision.detail and "without waiting" in decision.detail


def test_cooldown_and_budget_come_before_waiting():
    history = ModelHistory(submitted=(("run-a", T0 - timedelta(hours=1)),))
    assert decide(drift(rows=10), policy(), history, T0).reason == "cooldown"
    assert decide(drift(rows=10), policy(daily_budget=0), ModelHistory(), T0).reason == "budget"


def test_parameters_carry_the_change_point():
    assert parameters_for(drift(), policy())["change-point"] == CHANGE.isoformat()
    assert parameters_for(drift(rows=None), policy())["change-point"] == ""


# -- following up instead of cooling down ---------------------------------------------------
LAST = T0 - timedelta(hours=2)  # the last run: inside the 6 h cooldown


def history_after(record: RunRecord, *earlier: tuple[str, datetime]) -> ModelHistory:
    own = [*earlier, (record.run_id, LAST)]
    return merge_history([], own, None, [record], T0 - timedelta(days=1))


@pytest.mark.parametrize(
    ("record", "rule"),
    [
        (run("run-a", LAST, "succeeded", {"promoted": False, "version": "v2",
                                          "why": "failed the gate"}),
         "run run-a finished without promoting (not promoted: failed the gate)"),
        (run("run-a", LAST, "failed", failed_step="train"),
         "run run-a finished without promoting (failed in train)"),
    ],
)  # fmt: skip
def test_a_run_that_did_not_promote_does_not_start_a_cooldown(record, rule):
    decision = decide(drift(), policy(), history_after(record), T0)
    assert (decision.outcome, decision.reason) == ("submit", "severe")
    assert f"cooldown waived: {rule}" in decision.detail
    # Evidence still applies to the follow-up.
    assert decide(drift(rows=10), policy(), history_after(record), T0).outcome == "wait"


def test_a_promoted_version_still_degraded_is_followed_up():
    promoted = run("run-a", LAST, "succeeded", {"promoted": True, "version": "v2"})
    history = history_after(promoted)
    assert history.outcomes["run-a"] == RunOutcome(promoted="v2")
    decision = decide(degraded("v2"), policy(), history, T0)
    assert decision.outcome == "submit"
    assert (
        "cooldown waived: version v2, promoted by run run-a, is still degraded" in decision.detail
    )
    # The previous version degraded (its last windows), or data drift of the promoted
    # version (its reference is new; drift is not harm): the cooldown holds.
    assert decide(degraded("v1"), policy(), history, T0).reason == "cooldown"
    assert decide(drift(model_version="v2"), policy(), history, T0).reason == "cooldown"


def test_a_run_that_committed_its_challenger_as_shadow_keeps_the_cooldown():
    """``promote_as: shadow``: the run's version is scored beside the serving one, which
    still answers; events about the serving version wait out the cooldown while the
    shadow is watched (no second run replaces it at once)."""
    shadowed = run("run-a", LAST, "succeeded", {"promoted": True, "version": "v2", "as": "shadow"})
    history = history_after(shadowed)
    assert history.outcomes["run-a"] == RunOutcome(promoted="v2")
    assert decide(degraded("v1"), policy(), history, T0).reason == "cooldown"
    assert decide(drift(model_version="v1"), policy(), history, T0).reason == "cooldown"


def test_an_unknown_outcome_or_a_backend_without_records_keeps_the_cooldown():
    unknown = run("run-a", LAST, "succeeded")  # no promote result to read
    assert run_outcome(unknown) == RunOutcome()
    assert decide(drift(), policy(), history_after(unknown), T0).reason == "cooldown"
    argo = merge_history([], [("run-a", LAST)], None, None, T0 - timedelta(days=1))
    assert argo.outcomes == {}
    assert decide(degraded("v2"), policy(), argo, T0).reason == "cooldown"
    assert run_outcome(run("run-b", LAST, "running")) is None


def test_the_budget_caps_both_follow_ups():
    refused = run("run-c", LAST, "succeeded", {"promoted": False, "why": "failed the gate"})
    promoted = run("run-c", LAST, "succeeded", {"promoted": True, "version": "v2"})
    spent = (("run-a", T0 - timedelta(hours=20)), ("run-b", T0 - timedelta(hours=10)))
    for record, event in ((refused, drift()), (promoted, degraded("v2"))):
        assert decide(event, policy(daily_budget=4), history_after(record, *spent), T0).outcome == (
            "submit"
        )
        capped = decide(event, policy(daily_budget=3), history_after(record, *spent), T0)
        assert (capped.outcome, capped.reason) == ("skip", "budget")


# -- waiting, durably -----------------------------------------------------------------------
Decide = Callable[[sqlite3.Connection, DriftEvent], tuple[Decision, str, dict[str, str]]]


def decider(now: datetime, p: TriggerPolicy | None = None) -> Decide:
    """What the service does for one event: the store's history, the pure decision."""
    chosen = p or policy()

    def run_decision(db: sqlite3.Connection, e: DriftEvent) -> tuple[Decision, str, dict[str, str]]:
        pending, submitted, window_run = DecisionStore.history(db, e, now - timedelta(days=1))
        waiting = DecisionStore.waiting_since(db, e.model_name)
        history = merge_history(pending, submitted, window_run, None, now, waiting)
        decision = decide(e, chosen, history, now)
        params = parameters_for(e, chosen) if decision.outcome == "submit" else {}
        return decision, run_id_for_event(e.event_id), params

    return run_decision


def test_waiting_survives_a_restart_and_max_wait_submits_the_latest_held_event(tmp_path):
    path = tmp_path / "decisions.sqlite"
    store = DecisionStore(path)
    first, second = drift(0, rows=812, positives=14), drift(1, rows=1900, positives=25)
    [(_, held)] = store.record("t", [first], {0: 1}, decider(T0), T0)[0]
    assert held.outcome == "wait"
    [waiting_row] = store.unpublished()  # a waiting event is announced at once
    assert (waiting_row.outcome, waiting_row.run_id) == ("wait", run_id_for_event(first.event_id))
    assert "812/3000 labelled rows, 14/40 positives" in waiting_row.message
    store.close()

    store = DecisionStore(path)  # a restart goes on waiting, since the first held event
    later = T0 + timedelta(hours=1)
    store.record("t", [second], {0: 2}, decider(later), later)
    [waiting] = store.held()
    assert (waiting.since, waiting.event, waiting.run_id) == (
        T0, second, run_id_for_event(second.event_id))  # fmt: skip
    assert store.pending() == []
    assert store.resolve("fraud", decider(later), later) == (second, store_wait(later))
    assert store.held() != []  # still waiting: nothing changed

    expired = T0 + timedelta(hours=4)  # no event arrives: the periodic pass decides
    event, decision = store.resolve("fraud", decider(expired), expired) or (None, None)
    assert event == second and decision is not None and decision.reason == "max_wait"
    assert "waited 4h00m since 2026-06-01 00:00:00; evidence 1900 rows, 25 positives" in (
        decision.detail
    )
    assert store.held() == [] and store.resolve("fraud", decider(expired), expired) is None
    [pending] = store.pending()
    assert pending.event_id == second.event_id and pending.run_id == run_id_for_event(
        second.event_id
    )
    assert pending.parameters["change-point"] == CHANGE.isoformat()
    store.mark_submitted(second.event_id, created=True, backend="local", at=expired)
    # The submission is announced; the first held event keeps its announced wait.
    assert [(r.event_id, r.outcome) for r in store.unpublished()] == [
        (first.event_id, "wait"), (second.event_id, "submit")]  # fmt: skip
    # The run it started counts against the cooldown like any other.
    after = expired + timedelta(hours=1)
    [(_, cooled)] = store.record("t", [drift(9, rows=10)], {0: 3}, decider(after), after)[0]
    assert cooled.reason == "cooldown"


def store_wait(now: datetime) -> Decision:
    """The decision a second look at the held event gives an hour in (unchanged: wait)."""
    return decide(drift(1, rows=1900, positives=25), policy(), ModelHistory(waiting_since=T0), now)


def test_an_event_with_enough_evidence_ends_the_wait(tmp_path):
    store = DecisionStore(tmp_path / "decisions.sqlite")
    store.record("t", [drift(0, rows=100, positives=2)], {0: 1}, decider(T0), T0)
    assert [h.model for h in store.held()] == ["fraud"]
    later = T0 + timedelta(hours=2)
    [(_, decision)] = store.record("t", [drift(1)], {0: 2}, decider(later), later)[0]
    assert decision.outcome == "submit" and store.held() == []
    assert store.pending()[0].event_id == drift(1).event_id


def test_a_held_event_that_can_no_longer_run_is_skipped_and_ends_the_wait(tmp_path):
    store = DecisionStore(tmp_path / "decisions.sqlite")
    held = drift(0, rows=100, positives=2)
    store.record("t", [held], {0: 1}, decider(T0), T0)
    store.mark_published([held.event_id])
    expired = T0 + timedelta(hours=5)
    _, decision = store.resolve("fraud", decider(expired, policy(enabled=False)), expired) or (
        None, None)  # fmt: skip
    assert decision is not None and decision.reason == "disabled"
    assert store.held() == [] and store.pending() == []
    [skipped] = store.unpublished()  # announced anew: skipped
    assert (skipped.event_id, skipped.outcome) == (held.event_id, "skip")


# -- what `driftloop runs` reads ------------------------------------------------------------
def test_waiting_records_are_files_beside_the_runs(tmp_path):
    store = WaitingStore(tmp_path / "runs")
    assert store.all() == []
    record = Waiting(
        model="fraud", run_id="retrain-x", trigger_event_id="x", since=T0,
        until=T0 + timedelta(hours=6), change_point=CHANGE, labelled_rows=812, positives=14,
        min_labelled_rows=2000, min_positives=40,
    )  # fmt: skip
    store.put(record)
    store.put(record.model_copy(update={"model": "other"}))
    assert record.line() == (
        "fraud: waiting for evidence since 2026-06-01 00:00:00: 812/2000 labelled rows,"
        " 14/40 positives (max wait until 2026-06-01 06:00:00)"
    )
    assert store.all("fraud") == [record]
    assert record.model_dump(mode="json")["status"] == "waiting"
    store.keep_only({"fraud"})
    assert [w.model for w in store.all()] == ["fraud"]
    (store.root / "broken.json").write_text("{")
    assert store.all() == [record]  # an unreadable file is passed over
    store.remove("fraud")
    store.remove("fraud")
    assert store.all() == []
