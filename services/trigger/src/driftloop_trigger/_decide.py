"""The decision for one drift event: submit a retraining run, hold it until enough
labelled evidence of the new regime exists, or skip it and say why.

A pure function of the event, the model's policy, what is known of the model's runs and
the time, so every rule is tested without Kafka, Ray or a clock.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal, get_args

from driftloop.events import DriftEvent
from driftloop.runs import RunRecord
from driftloop_trigger._policy import EvidenceRule, TriggerPolicy

Outcome = Literal["submit", "wait", "skip"]
Reason = Literal[
    "severe",  # submitted
    "max_wait",  # submitted after waiting for evidence that did not come
    "waiting_for_evidence",  # held
    "no_policy",
    "policy_error",
    "disabled",
    "kind_disabled",
    "below_severity",
    "duplicate_window",
    "active_run",
    "cooldown",
    "budget",
    "rolled_back_version",  # an event of a version rolled back: it serves no more
    "rollback_cooldown",
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
class RunOutcome:
    """How a finished run ended, as far as its run record shows: the version it promoted,
    or why it promoted none (failed, or its challenger was refused). Both None: unknown."""

    promoted: str | None = None
    unpromoted: str | None = None


@dataclass(frozen=True)
class ModelHistory:
    """What the policy needs to know of a model's runs when an event arrives.

    ``active``: runs not finished, including ones decided and not yet submitted.
    ``submitted``: (run id, when) of runs started recently, at least over the last day
    and the cooldown. ``window_run``: a run already asked for by an event of the same
    model version and window (another kind, or the same window seen before).
    ``outcomes``: finished runs by id (a backend without run records: none).
    ``waiting_since``: when the model's first event still held for evidence was held.
    ``rolled_back``: versions of the model the trigger rolled back; ``last_rollback``:
    when it last did."""

    active: Sequence[str] = ()
    submitted: Sequence[tuple[str, datetime]] = field(default_factory=tuple)
    window_run: str | None = None
    outcomes: Mapping[str, RunOutcome] = field(default_factory=dict)
    waiting_since: datetime | None = None
    rolled_back: frozenset[str] = frozenset()
    last_rollback: datetime | None = None


def run_outcome(record: RunRecord) -> RunOutcome | None:
    """A finished run's outcome from its record (None while it runs)."""
    if not record.finished:
        return None
    if record.status == "failed":
        failed = [s for s in record.steps.values() if s.status == "failed"]
        where = f" in {failed[0].name}" if failed else ""
        return RunOutcome(unpromoted=f"failed{where}")
    state = record.steps.get("promote")
    try:
        result = json.loads(state.result) if state is not None and state.result else None
    except json.JSONDecodeError:
        result = None
    if not isinstance(result, dict) or "promoted" not in result:
        return RunOutcome()
    if result["promoted"]:
        return RunOutcome(promoted=str(result.get("version", "")) or None)
    return RunOutcome(unpromoted=f"not promoted: {result.get('why', 'nothing changed')}")


def merge_history(
    pending: Sequence[str],
    submitted: Sequence[tuple[str, datetime]],
    window_run: str | None,
    runs: Sequence[RunRecord] | None,
    since: datetime,
    waiting_since: datetime | None = None,
) -> ModelHistory:
    """The trigger's own record of a model's runs, joined with the run records of a backend
    that shows them (the local executor's; None for Argo): a run started by hand or on a
    schedule is active, and counts against the cooldown and budget, all the same."""
    active = dict.fromkeys(pending)
    started = dict(submitted)
    outcomes = {}
    for run in runs or ():
        if not run.finished:
            active.setdefault(run.run_id)
        elif (outcome := run_outcome(run)) is not None:
            outcomes[run.run_id] = outcome
        if run.created_at >= since:
            started[run.run_id] = min(started.get(run.run_id, run.created_at), run.created_at)
    return ModelHistory(tuple(active), tuple(started.items()), window_run, outcomes, waiting_since)


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
    """Submit, wait or skip, checked in this order: policy, kind, a rolled-back version, the
    cooldown after a rollback, severity, window, active run, cooldown (waived after a run
    that did not promote, or for a promoted version still degraded), daily budget,
    evidence (wait, up to ``max_wait``)."""
    if policy is None:
        return Decision("skip", "no_policy", f"no trigger.yaml for model {event.model_name}")
    if not policy.enabled:
        return Decision("skip", "disabled", f"the trigger is disabled for {policy.model}")
    rule = policy.data_drift if event.kind == "data_drift" else policy.performance
    if not rule.enabled:
        return Decision("skip", "kind_disabled", f"{event.kind} events do not trigger runs")
    if event.model_version in history.rolled_back:
        return Decision("skip", "rolled_back_version",
                        f"{event.model_version} was rolled back; the version it replaced"
                        " serves again")  # fmt: skip
    last = history.last_rollback
    if last is not None and now < last + policy.rollback.cooldown:
        until = last + policy.rollback.cooldown
        return Decision("skip", "rollback_cooldown",
                        f"a rollback was committed at {last:%Y-%m-%d %H:%M:%S}; no run"
                        f" until {until:%Y-%m-%d %H:%M:%S}")  # fmt: skip
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
            waiver = _follow_up(event, last_run, history.outcomes.get(last_run))
            if waiver is None:
                until = last + policy.cooldown
                return Decision(
                    "skip",
                    "cooldown",
                    f"run {last_run} was submitted at {last:%Y-%m-%d %H:%M:%S};"
                    f" cooling down until {until:%Y-%m-%d %H:%M:%S}",
                )
            why += f"; cooldown waived: {waiver}"
    recent = [s for s in history.submitted if s[1] > now - DAY]
    if len(recent) >= policy.daily_budget:
        return Decision(
            "skip",
            "budget",
            f"{len(recent)} run(s) submitted in the last 24 h; the daily"
            f" budget is {policy.daily_budget}",
        )
    return _with_evidence(event, policy.evidence, history.waiting_since, now, why)


def _follow_up(event: DriftEvent, last_run: str, outcome: RunOutcome | None) -> str | None:
    """Why the cooldown after ``last_run`` does not hold this event back, if it does not."""
    if outcome is None:
        return None
    if outcome.unpromoted is not None:
        return f"run {last_run} finished without promoting ({outcome.unpromoted})"
    if event.kind == "performance_degraded" and outcome.promoted == event.model_version:
        return f"version {event.model_version}, promoted by run {last_run}, is still degraded"
    return None


def _with_evidence(
    event: DriftEvent, rule: EvidenceRule, waiting_since: datetime | None, now: datetime, why: str
) -> Decision:
    if not rule.holds:
        return Decision("submit", "severe", why)
    found = event.evidence
    if found is None:
        return Decision(
            "submit",
            "severe",
            f"{why}; the event carries no evidence (schema v{event.schema_version}):"
            " submitted without waiting for it",
        )
    counts = (
        f"{found.labelled_rows}/{rule.min_labelled_rows} labelled rows,"
        f" {found.positives}/{rule.min_positives} positives since {found.since:%Y-%m-%d %H:%M:%S}"
    )
    if found.labelled_rows >= rule.min_labelled_rows and found.positives >= rule.min_positives:
        return Decision("submit", "severe", f"{why}; evidence {counts}")
    since = waiting_since or now
    until = since + rule.max_wait
    if now >= until:
        return Decision(
            "submit",
            "max_wait",
            f"waited {_span(now - since)} since {since:%Y-%m-%d %H:%M:%S};"
            f" evidence {found.labelled_rows} rows, {found.positives} positives < minimum"
            f" {rule.min_labelled_rows} rows, {rule.min_positives} positives; {why}",
        )
    return Decision(
        "wait",
        "waiting_for_evidence",
        f"{counts}; waiting since {since:%Y-%m-%d %H:%M:%S},"
        f" max wait until {until:%Y-%m-%d %H:%M:%S}; {why}",
    )


def _span(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes // 60}h{minutes % 60:02d}m"
