"""The decision for one drift event: submit a retraining run, or skip it and say why.

A pure function of the event, the model's policy, what is known of the model's runs and
the time, so every rule is tested without Kafka, Ray or a clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal, get_args

from driftloop.events import DriftEvent
from driftloop.runs import RunRecord
from driftloop_trigger._policy import TriggerPolicy

Outcome = Literal["submit", "skip"]
Reason = Literal[
    "severe",  # submitted
    "no_policy",
    "policy_error",
    "disabled",
    "kind_disabled",
    "below_severity",
    "duplicate_window",
    "active_run",
    "cooldown",
    "budget",
]
REASONS: tuple[str, ...] = get_args(Reason)
DAY = timedelta(days=1)


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    reason: Reason
    detail: str

    @property
    def message(self) -> str:
        return f"{self.reason}: {self.detail}"


@dataclass(frozen=True)
class ModelHistory:
    """What the policy needs to know of a model's runs when an event arrives.

    ``active``: runs not finished, including ones decided and not yet submitted.
    ``submitted``: (run id, when) of runs started recently, at least over the last day
    and the cooldown. ``window_run``: a run already asked for by an event of the same
    model version and window (another kind, or the same window seen before)."""

    active: Sequence[str] = ()
    submitted: Sequence[tuple[str, datetime]] = field(default_factory=tuple)
    window_run: str | None = None


def merge_history(
    pending: Sequence[str],
    submitted: Sequence[tuple[str, datetime]],
    window_run: str | None,
    runs: Sequence[RunRecord] | None,
    since: datetime,
) -> ModelHistory:
    """The trigger's own record of a model's runs, joined with the run records of a backend
    that shows them (the local executor's; None for Argo): a run started by hand or on a
    schedule is active, and counts against the cooldown and budget, all the same."""
    active = dict.fromkeys(pending)
    started = dict(submitted)
    for run in runs or ():
        if not run.finished:
            active.setdefault(run.run_id)
        if run.created_at >= since:
            started[run.run_id] = min(started.get(run.run_id, run.created_at), run.created_at)
    return ModelHistory(tuple(active), tuple(started.items()), window_run)


def severity(event: DriftEvent, policy: TriggerPolicy) -> tuple[bool, str]:
    """Whether the event is severe enough, and what made it so (or not)."""
    if event.kind == "data_drift":
        rule = policy.data_drift
        counted = [
            c.column
            for c in event.columns
            if c.category == "DRIFT"
            and c.column not in rule.ignore_columns
            and c.statistic >= rule.min_statistic.get(c.algorithm, float("-inf"))
        ]
        found = f"{len(counted)} drifted column(s)"
        if counted:
            found += f" ({', '.join(counted)})"
        if len(counted) < rule.min_drifted_columns:
            return False, f"{found}; the policy needs {rule.min_drifted_columns}"
        return True, found
    perf = policy.performance
    drops = {k.removeprefix("drop_"): v for k, v in event.metrics.items() if k.startswith("drop_")}
    shown = ", ".join(f"{m} -{v:.3f}" for m, v in sorted(drops.items())) or "no drops reported"
    if not perf.min_drop:
        return True, f"performance degraded: {shown}"
    counted = [m for m, floor in perf.min_drop.items() if drops.get(m, float("-inf")) >= floor]
    if len(counted) < perf.min_degraded_metrics:
        floors = ", ".join(f"{m} -{v:g}" for m, v in sorted(perf.min_drop.items()))
        return False, (
            f"{len(counted)} metric(s) dropped past their floor ({shown}; floors {floors});"
            f" the policy needs {perf.min_degraded_metrics}"
        )
    return True, f"performance degraded: {shown}"


def decide(
    event: DriftEvent, policy: TriggerPolicy | None, history: ModelHistory, now: datetime
) -> Decision:
    """Submit or skip, checked in this order: policy, kind, severity, window, active run,
    cooldown, daily budget."""
    if policy is None:
        return Decision("skip", "no_policy", f"no trigger.yaml for model {event.model_name}")
    if not policy.enabled:
        return Decision("skip", "disabled", f"the trigger is disabled for {policy.model}")
    rule = policy.data_drift if event.kind == "data_drift" else policy.performance
    if not rule.enabled:
        return Decision("skip", "kind_disabled", f"{event.kind} events do not trigger runs")
    severe, why = severity(event, policy)
    if not severe:
        return Decision("skip", "below_severity", why)
    if history.window_run is not None:
        return Decision(
            "skip", "duplicate_window", f"run {history.window_run} was submitted for this window"
        )
    if history.active:
        return Decision("skip", "active_run", f"run {history.active[0]} has not finished")
    if history.submitted:
        last_run, last = max(history.submitted, key=lambda s: s[1])
        if now < last + policy.cooldown:
            until = last + policy.cooldown
            return Decision(
                "skip",
                "cooldown",
                f"run {last_run} was submitted at {last:%Y-%m-%d %H:%M:%S};"
                f" cooling down until {until:%Y-%m-%d %H:%M:%S}",
            )
    recent = [s for s in history.submitted if s[1] > now - DAY]
    if len(recent) >= policy.daily_budget:
        return Decision(
            "skip",
            "budget",
            f"{len(recent)} run(s) submitted in the last 24 h; the daily"
            f" budget is {policy.daily_budget}",
        )
    return Decision("submit", "severe", why)
