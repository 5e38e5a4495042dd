"""Each model's trigger.yaml against its monitor.yaml: an event the monitor publishes as
drift (at the least it calls drift) must not be one the trigger skips as below severity —
or the monitor's thresholds, measured and documented there, are silently overruled."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from driftloop_trigger import ModelHistory, TriggerPolicy, decide, load_policy

from driftloop.drift import MonitorPolicy
from driftloop.drift import load_policy as load_monitor
from driftloop.events import ColumnDrift, DriftEvent, Window

APPS = Path(__file__).resolve().parents[2] / "deploy" / "apps"
MODELS = sorted(p.parent.name for p in APPS.glob("*/trigger.yaml"))
NOW = datetime(2026, 6, 1, tzinfo=UTC)
EFFECT_IS_STATISTIC = {"ks", "hellinger"}  # chi-square reports its statistic, not the effect


def _policies(model: str) -> tuple[TriggerPolicy, MonitorPolicy]:
    return load_policy(APPS / model / "trigger.yaml"), load_monitor(APPS / model / "monitor.yaml")


def _event(columns: list[ColumnDrift], kind: str = "data_drift", **metrics: float) -> DriftEvent:
    return DriftEvent(
        kind=kind,
        model_name="m",
        model_version="v1",
        window=Window(start=NOW - timedelta(hours=1), end=NOW, row_count=2000),
        reference_profile="models:/m/v1/reference",
        columns=columns,
        metrics=metrics,
    )


def _least_drift(monitor: MonitorPolicy, algorithm: str) -> list[ColumnDrift]:
    """Columns the monitor would publish as the weakest drift event it can send."""
    spec = monitor.drift
    effects: dict[str, float] = {str(k): v for k, v in spec.min_effect.items()}
    lowest = min(
        [effects.get(algorithm, 0.0)]
        + [r.min_effect for r in spec.overrides.values() if r.min_effect is not None]
    )
    return [
        ColumnDrift(
            column=f"c{i}", algorithm=algorithm, statistic=lowest, p_value=1e-9, category="DRIFT"
        )
        for i in range(spec.min_drifted_columns)
    ]


def test_every_trigger_policy_has_a_monitor_policy():
    assert MODELS
    for model in MODELS:
        assert (APPS / model / "monitor.yaml").is_file(), model


@pytest.mark.parametrize("model", MODELS)
def test_the_weakest_drift_the_monitor_publishes_triggers_a_run(model):
    trigger, monitor = _policies(model)
    assert trigger.data_drift.min_drifted_columns <= monitor.drift.min_drifted_columns
    # A floor on a statistic that is not the monitor's effect cannot be checked here.
    assert set(trigger.data_drift.min_statistic) <= EFFECT_IS_STATISTIC
    for algorithm in sorted({monitor.drift.numeric, *trigger.data_drift.min_statistic}):
        event = _event(_least_drift(monitor, algorithm))
        decision = decide(
            event.model_copy(update={"model_name": model}), trigger, ModelHistory(), NOW
        )
        assert (decision.outcome, decision.reason) == ("submit", "severe"), decision.message


@pytest.mark.parametrize("model", MODELS)
def test_the_trigger_ignores_no_column_the_monitor_tests(model):
    trigger, monitor = _policies(model)
    assert set(trigger.data_drift.ignore_columns) <= set(monitor.drift.exclude)


@pytest.mark.parametrize("model", MODELS)
def test_the_weakest_degradation_the_monitor_publishes_triggers_a_run(model):
    trigger, monitor = _policies(model)
    if not monitor.performance.enabled:
        pytest.skip("the monitor publishes no performance events")
    assert trigger.performance.enabled
    spec = monitor.performance
    drops = {f"drop_{m}": v for m, v in sorted(spec.max_drop.items())[: spec.min_degraded_metrics]}
    event = _event([], "performance_degraded", **drops)
    decision = decide(event.model_copy(update={"model_name": model}), trigger, ModelHistory(), NOW)
    assert (decision.outcome, decision.reason) == ("submit", "severe"), decision.message


def test_the_check_catches_a_trigger_stricter_than_its_monitor():
    trigger, monitor = _policies(MODELS[0])
    stricter = trigger.model_copy(
        update={
            "data_drift": trigger.data_drift.model_copy(
                update={"min_drifted_columns": monitor.drift.min_drifted_columns + 1}
            )
        }
    )
    event = _event(_least_drift(monitor, monitor.drift.numeric))
    decision = decide(event, stricter, ModelHistory(), NOW)
    assert decision.reason == "below_severity"
