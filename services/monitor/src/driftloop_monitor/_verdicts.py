"""A challenger (a shadow or a canary) judged against the serving version on labelled rows.

Both versions' metrics are computed on their labelled rows (a shadow's: the same payments,
paired; a canary's: its customers' payments, the serving version's the others' of the
same period) and compared both ways with the performance check's test (``compare_metrics``,
which counts each side's rows and positives, as the rollback's pooled comparison of two
versions on different payments does): the challenger is worse, better, or not known yet.
A verdict becomes a drift event (``shadow_verdict`` or ``canary_verdict``) whose id
derives from the model, both versions and the verdict, so a replay, or a later judgement
reaching the same verdict, is the same event; better asks for a promotion and worse for a
removal, and an unknown verdict is said once, when the deadline passes, with the action
the policy chose for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from driftloop.drift import CanarySpec, MonitorPolicy, ShadowSpec, compare_metrics
from driftloop.events import (
    CanaryVerdict,
    DriftEvent,
    ShadowAction,
    ShadowOutcome,
    ShadowVerdict,
    Window,
)
from driftloop_monitor._checkpoint import Joined
from driftloop_monitor._judge import performance_metrics
from driftloop_monitor._live import LiveJoin, Pair, Role
from driftloop_monitor._shadow import PairedRow

HOUR = 3600.0


@dataclass(frozen=True)
class Compared:
    metric: str
    serving: float
    challenger: float
    standard_error: float
    """of the difference challenger - serving"""
    p_better: float
    p_worse: float


@dataclass(frozen=True)
class Judgement:
    verdict: ShadowOutcome
    serving: dict[str, float]
    challenger: dict[str, float]
    """each side's metrics, with its ``rows`` and ``positives``"""
    comparisons: list[Compared]
    reason: str

    @property
    def rows(self) -> int:
        """The challenger's labelled rows (a shadow's: the paired rows)."""
        return int(self.challenger["rows"])

    @property
    def positives(self) -> int:
        return int(self.challenger["positives"])


def judge(
    policy: MonitorPolicy, spec: ShadowSpec | CanarySpec, serving_rows: list[Joined],
    challenger_rows: list[Joined],
) -> Judgement:  # fmt: skip
    """The verdict on both sides' labelled rows (see ``ShadowSpec``, ``CanarySpec``)."""
    serving, challenger = performance_metrics(serving_rows), performance_metrics(challenger_rows)
    small = [
        f"{name} {int(m['rows'])}/{spec.min_rows} rows, {int(m['positives'])}/"
        f"{spec.min_positives} positives"
        for name, m in (("serving", serving), ("challenger", challenger))
        if m["rows"] < spec.min_rows or m["positives"] < spec.min_positives
    ]
    if small:
        return Judgement("unknown", serving, challenger, [], "; ".join(small))
    test = spec.test_spec(policy.performance)
    worse = {t.metric: t for t in compare_metrics(challenger, serving, test)}
    better = {t.metric: t for t in compare_metrics(serving, challenger, test)}
    comparisons = [
        Compared(m, serving[m], challenger[m], worse[m].standard_error, better[m].p_adjusted,
                 worse[m].p_adjusted)
        for m in worse if m in better
    ]  # fmt: skip
    down = sorted(m for m, t in worse.items() if t.degraded)
    up = sorted(m for m, t in better.items() if t.degraded)
    verdict: ShadowOutcome = "worse" if down else "better" if up else "unknown"
    why = {
        "worse": f"significantly below the serving version on {', '.join(down)}",
        "better": f"significantly above the serving version on {', '.join(up)}",
        "unknown": "no metric differs significantly by its min_difference",
    }[verdict]
    return Judgement(verdict, serving, challenger, comparisons, why)


def judge_rows(policy: MonitorPolicy, rows: list[PairedRow]) -> Judgement:
    """The verdict on a shadow pair's paired rows."""
    serving: list[Joined] = [(t, a, b, y) for t, a, b, _, _, y in rows]
    return judge(policy, policy.shadow, serving, [(t, c, d, y) for t, _, _, c, d, y in rows])


def _utc(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def verdict_event(
    policy: MonitorPolicy,
    role: Role,
    pair: Pair,
    judged: Judgement,
    times: list[float],
    action: ShadowAction,
) -> DriftEvent:
    """The drift event of a verdict; ``times``: the challenger's labelled rows'."""
    spec = policy.shadow if role == "shadow" else policy.canary
    times = times or [pair.first_seen]
    live: dict[str, object] = {
        "version": pair.challenger, "verdict": judged.verdict, "action": action,
        "rows": judged.rows, "positives": judged.positives, "serving_metrics": judged.serving,
        "first_seen": _utc(pair.first_seen),
        "deadline": _utc(pair.first_seen) + timedelta(hours=spec.deadline_hours),
        "reason": judged.reason, f"{role}_metrics": judged.challenger,
    }  # fmt: skip
    metrics = {"rows": float(judged.rows), "positives": float(judged.positives)}
    if role == "canary":
        metrics["serving_rows"] = judged.serving["rows"]
        metrics["serving_positives"] = judged.serving["positives"]
    for c in judged.comparisons:
        metrics[f"serving_{c.metric}"], metrics[f"{role}_{c.metric}"] = c.serving, c.challenger
        metrics[f"p_better_{c.metric}"], metrics[f"p_worse_{c.metric}"] = c.p_better, c.p_worse
    live["comparisons"] = [
        {"metric": c.metric, "serving": c.serving, role: c.challenger,
         "standard_error": c.standard_error, "p_better": c.p_better, "p_worse": c.p_worse}
        for c in judged.comparisons
    ]  # fmt: skip
    window = Window(start=_utc(min(times)), end=_utc(max(times)), row_count=judged.rows)
    if role == "canary":
        live["serving_rows"] = int(judged.serving["rows"])
        live["serving_positives"] = int(judged.serving["positives"])
    return DriftEvent(
        kind="shadow_verdict" if role == "shadow" else "canary_verdict",
        model_name=policy.model, model_version=pair.serving, window=window,
        reference_profile=f"models:/{policy.model}/{pair.serving}", metrics=metrics,
        shadow=ShadowVerdict.model_validate(live) if role == "shadow" else None,
        canary=CanaryVerdict.model_validate(live) if role == "canary" else None,
    )  # fmt: skip


def judge_due(
    policy: MonitorPolicy, join: LiveJoin, label_watermark: float
) -> list[tuple[Pair, Judgement, DriftEvent | None]]:
    """Inside the batch's transaction: judge every open pair of ``join`` with ``step`` new
    labelled rows, or whose deadline the labels have passed; return each judgement and
    its event."""
    spec = join.spec
    out: list[tuple[Pair, Judgement, DriftEvent | None]] = []
    for pair in join.pairs():
        if pair.closed is not None:
            continue
        final = not pair.deadline_said and (
            pair.first_seen + spec.deadline_hours * HOUR <= label_watermark
        )
        if pair.since_eval < spec.step and not final:
            continue
        serving, challenger = join.sides(pair)
        judged = judge(policy, spec, serving, challenger)
        times = [r[0] for r in challenger]
        event = None
        if judged.verdict == "better":
            event = verdict_event(policy, join.role, pair, judged, times, "promote")
            join.update_pair(pair, closed="better")
        elif judged.verdict == "worse":
            event = verdict_event(policy, join.role, pair, judged, times, "remove")
            join.update_pair(pair, closed="worse")
        elif final:
            action = spec.on_deadline
            event = verdict_event(policy, join.role, pair, judged, times, action)
            closed = None if action == "keep" else "unknown"
            join.update_pair(pair, closed=closed, deadline_said=True)
        else:
            join.update_pair(pair)
        out.append((pair, judged, event))
    return out
