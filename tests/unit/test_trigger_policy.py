"""The trigger's policy files and its decisions: pure logic, a fake clock, no services."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from driftloop_trigger import (
    ModelHistory,
    Policies,
    PolicyError,
    TriggerPolicy,
    decide,
    load_policy,
    merge_history,
    severity,
)
from pydantic import ValidationError

from driftloop.events import ColumnDrift, DriftEvent, Window
from driftloop.runs import RunRecord

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 6, 1, tzinfo=UTC)


def drift(drifted: int = 3, *, i: int = 0, stat: float = 0.3, model: str = "fraud") -> DriftEvent:
    start = T0 + timedelta(minutes=10 * i)
    columns = [
        ColumnDrift(column=f"f{c}", algorithm="ks", statistic=stat if c < drifted else 0.01,
                    category="DRIFT" if c < drifted else "NO_DRIFT")
        for c in range(5)
    ]  # fmt: skip
    return DriftEvent(
        model_name=model, model_version="v1", reference_profile="models:/fraud/v1/ref",
        window=Window(start=start, end=start + timedelta(minutes=10), row_count=2000),
        columns=columns,
    )  # fmt: skip


def degraded(drop: float = 0.1, *, i: int = 0) -> DriftEvent:
    start = T0 + timedelta(minutes=10 * i)
    return DriftEvent(
        kind="performance_degraded", model_name="fraud", model_version="v1",
        reference_profile="models:/fraud/v1/metadata.json",
        window=Window(start=start, end=start + timedelta(minutes=10), row_count=2000),
        metrics={"roc_auc": 0.9 - drop, "drop_roc_auc": drop, "drop_recall_at_threshold": 0.01},
    )  # fmt: skip


def policy(**changes: object) -> TriggerPolicy:
    raw: dict[str, object] = {"model": "fraud", "data_drift": {"min_drifted_columns": 2},
                              "cooldown": "2h", "daily_budget": 3}  # fmt: skip
    raw.update(changes)
    return TriggerPolicy.model_validate(raw)


def write(root: Path, model: str, text: str) -> Path:
    path = root / model / "trigger.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# -- policy files ---------------------------------------------------------------------------
def test_the_fraud_policy_in_the_repository_loads():
    loaded = load_policy(ROOT / "deploy" / "apps" / "fraud" / "trigger.yaml")
    assert loaded.model == "fraud" and loaded.enabled
    assert loaded.cooldown == timedelta(hours=6)
    assert loaded.data_drift.min_drifted_columns >= 1
    assert loaded.window == "7d"


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("model: fraud\ncooldwn: 1h\n", "cooldwn"),
        ("model: fraud\ndata_drift: {min_columns: 2}\n", "min_columns"),
        ("model: fraud\nwindow: 30 days\n", "30 days"),
        ("model: fraud\ncooldown: -60\n", "negative"),
        ("model: fraud\ncooldown: soon\n", "soon"),
        ("model: fraud\nperformance: {min_drop: {roc_auc: 0.05}, min_degraded_metrics: 2}\n",
         "exceeds"),
        ("model: fraud\nwindow_end: tomorrow\n", "window_end"),
        ("model: other\n", "directory"),
        ("- model: fraud\n", "mapping"),
        ("model: [fraud\n", "YAML"),
    ],
)  # fmt: skip
def test_a_policy_that_does_not_validate_is_an_error(tmp_path, text, complaint):
    path = write(tmp_path, "fraud", text)
    with pytest.raises(ValueError, match=complaint) as info:
        load_policy(path)
    if "model:" in text and complaint not in {"directory", "mapping", "YAML"}:
        assert isinstance(info.value, ValidationError)


def _touch(path: Path, text: str, step: int) -> None:
    path.write_text(text)
    stat = path.stat()  # make the change visible even within one mtime tick
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + step * 1_000_000_000))


def test_policies_follow_their_files_and_keep_the_last_valid_one(tmp_path):
    path = write(tmp_path, "fraud", "model: fraud\ncooldown: 6h\n")
    write(tmp_path, "broken", "model: broken\ncooldown: 6 hours\n")
    policies = Policies(tmp_path)
    with pytest.raises(ValueError, match="6 hours"):
        policies.load_all()  # start-up refuses an invalid policy
    assert policies.get("fraud").cooldown == timedelta(hours=6)  # type: ignore[union-attr]
    _touch(path, "model: fraud\ncooldown: 1h\n", 1)
    assert policies.get("fraud").cooldown == timedelta(hours=1)  # type: ignore[union-attr]
    _touch(path, "model: fraud\ncooldown: 1 hour\n", 2)
    assert policies.get("fraud").cooldown == timedelta(hours=1)  # type: ignore[union-attr]
    assert policies.errors == 1
    with pytest.raises(PolicyError, match="broken"):
        policies.get("broken")  # never valid: nothing to fall back to
    assert policies.get("unknown") is None
    path.unlink()
    assert policies.get("fraud") is None


# -- severity -------------------------------------------------------------------------------
def test_drifted_columns_count_by_category_floor_and_ignore_list():
    strict = policy(data_drift={"min_drifted_columns": 2, "min_statistic": {"ks": 0.2},
                                "ignore_columns": ["f0"]})  # fmt: skip
    assert severity(drift(3), strict) == (True, "2 drifted column(s) (f1, f2)")
    severe, why = severity(drift(2), strict)  # f0 ignored: one left
    assert not severe and why == "1 drifted column(s) (f1); the policy needs 2"
    assert not severity(drift(3, stat=0.15), strict)[0]  # all below the KS floor
    chi = drift(0).model_copy(update={"columns": [
        ColumnDrift(column=c, algorithm="chi-square", statistic=900.0, category="DRIFT")
        for c in ("a", "b")]})  # fmt: skip
    assert severity(chi, strict)[0]  # no floor for chi-square: its statistic is not a KS


def test_performance_severity_trusts_the_monitor_unless_floors_are_set():
    assert severity(degraded(0.01), policy())[0]
    floors = policy(performance={"min_drop": {"roc_auc": 0.05, "recall_at_threshold": 0.1}})
    assert severity(degraded(0.08), floors) == (
        True, "performance degraded: recall_at_threshold -0.010, roc_auc -0.080")  # fmt: skip
    both = policy(performance={"min_drop": {"roc_auc": 0.05, "recall_at_threshold": 0.1},
                               "min_degraded_metrics": 2})  # fmt: skip
    severe, why = severity(degraded(0.08), both)
    assert not severe and "1 metric(s) dropped past their floor" in why


# -- decisions ------------------------------------------------------------------------------
def test_a_performance_event_triggers_where_data_drift_would_not():
    p = policy()
    weak = decide(drift(1), p, ModelHistory(), T0)
    assert (weak.outcome, weak.reason) == ("skip", "below_severity")
    assert decide(degraded(), p, ModelHistory(), T0).outcome == "submit"
    off = policy(data_drift={"enabled": False})
    assert decide(drift(5), off, ModelHistory(), T0).reason == "kind_disabled"
    assert decide(degraded(), off, ModelHistory(), T0).outcome == "submit"
    no_perf = policy(performance={"enabled": False})
    assert decide(degraded(), no_perf, ModelHistory(), T0).reason == "kind_disabled"


def test_checks_come_in_order_and_name_their_reason():
    p = policy()
    busy = ModelHistory(active=("run-a",), submitted=(("run-a", T0),), window_run="run-w")
    assert decide(drift(), None, busy, T0).reason == "no_policy"
    assert decide(drift(), policy(enabled=False), busy, T0).reason == "disabled"
    assert decide(drift(1), p, busy, T0).reason == "below_severity"
    assert decide(drift(), p, busy, T0).message == (
        "duplicate_window: run run-w was submitted for this window"
    )
    active = decide(drift(), p, ModelHistory(active=("run-a",)), T0)
    assert active.message == "active_run: run run-a has not finished"


def test_cooldown_runs_from_the_last_submission():
    p = policy(cooldown="2h", daily_budget=10)
    history = ModelHistory(submitted=(("run-a", T0 - timedelta(hours=5)), ("run-b", T0)))
    early = decide(drift(), p, history, T0 + timedelta(hours=2) - timedelta(seconds=1))
    assert early.reason == "cooldown"
    assert "run run-b was submitted at 2026-06-01 00:00:00" in early.detail
    assert "until 2026-06-01 02:00:00" in early.detail
    assert decide(drift(), p, history, T0 + timedelta(hours=2)).outcome == "submit"


def test_a_day_of_events_spends_the_budget_then_waits_a_rolling_day():
    """An event every 30 minutes for two days, with a 2 h cooldown and 3 runs a day."""
    p = policy(cooldown="2h", daily_budget=3)
    submitted: list[tuple[str, datetime]] = []
    reasons: dict[str, int] = {}
    for step in range(96):
        now = T0 + timedelta(minutes=30 * step)
        decision = decide(drift(i=step), p, ModelHistory(submitted=tuple(submitted)), now)
        reasons[decision.reason] = reasons.get(decision.reason, 0) + 1
        if decision.outcome == "submit":
            submitted.append((f"run-{step}", now))
    hours = [(at - T0) / timedelta(hours=1) for _, at in submitted]
    assert hours == [0, 2, 4, 24, 26, 28]
    assert reasons["severe"] == 6 and reasons["budget"] > 0 and reasons["cooldown"] > 0
    assert decide(drift(), policy(daily_budget=0), ModelHistory(), T0).reason == "budget"


def _run(run_id: str, created: datetime, status: str) -> RunRecord:
    return RunRecord(run_id=run_id, workflow="driftloop-retrain", model="fraud", parameters={},
                     status=status, created_at=created)  # fmt: skip


def test_local_run_records_join_the_triggers_own_history():
    since = T0 - timedelta(days=1)
    records = [
        _run("manual-old", T0 - timedelta(days=3), "succeeded"),
        _run("manual-running", T0 - timedelta(hours=1), "running"),
        _run("trig-1", T0 - timedelta(hours=2), "failed"),
    ]
    own = [("trig-1", T0 - timedelta(hours=2, seconds=5))]
    merged = merge_history(["trig-2"], own, None, records, since)
    assert merged.active == ("trig-2", "manual-running")
    assert dict(merged.submitted) == {
        "trig-1": T0 - timedelta(hours=2, seconds=5),
        "manual-running": T0 - timedelta(hours=1),
    }
    assert merge_history([], own, "trig-1", None, since).active == ()  # Argo: own view only
