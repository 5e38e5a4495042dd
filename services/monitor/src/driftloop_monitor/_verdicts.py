"""A shadow version judged against the serving version on their paired labelled rows.

Both versions' metrics are computed on the same payments and compared both ways with the
performance check's test (``compare_metrics``; see ``ShadowSpec``): the shadow is worse,
better, or not known yet. A verdict becomes a ``shadow_verdict`` drift event whose id
derives from the model, both versions and the verdict, so a replay, or a later judgement
reaching the same verdict, is the same event; better asks for a promotion and worse for a
removal, and an unknown verdict is said once, when the deadline passes, with the action
the policy chose for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from driftloop.drift import MonitorPolicy, compare_metrics
from driftloop.events import (
    DriftEvent,
    MetricComparison,
    ShadowAction,
    ShadowOutcome,
    ShadowVerdict,
    Window,
)
from driftloop_monitor._checkpoint import Joined
from driftloop_monitor._judge import performance_metrics
from driftloop_monitor._shadow import Pair, PairedRow, ShadowJoin

HOUR = 3600.0


@dataclass(frozen=True)
class Judgement:
    verdict: ShadowOutcome
    rows: int
    positives: int
    serving: dict[str, float]
    shadow: dict[str, float]
    comparisons: list[MetricComparison]
    reason: str


def judge_rows(policy: MonitorPolicy, rows: list[PairedRow]) -> Judgement:
    """The verdict on a pair's rows (see ``ShadowSpec``)."""
    spec = policy.shadow
    serving_rows: list[Joined] = [(t, a, b, y) for t, a, b, _, _, y in rows]
    shadow_rows: list[Joined] = [(t, c, d, y) for t, _, _, c, d, y in rows]
    serving, shadow = performance_metrics(serving_rows), performance_metrics(shadow_rows)
    positives = int(serving["positives"])
    if len(rows) < spec.min_rows or positives < spec.min_positives:
        why = (f"{len(rows)}/{spec.min_rows} paired rows, {positives}/{spec.min_positives}"
               " positives")  # fmt: skip
        return Judgement("unknown", len(rows), positives, serving, shadow, [], why)
    test = spec.test_spec(policy.performance)
    worse = {t.metric: t for t in compare_metrics(shadow, serving, test)}
    better = {t.metric: t for t in compare_metrics(serving, shadow, test)}
    comparisons = [
        MetricComparison(
            metric=m, serving=serving[m], shadow=shadow[m],
            standard_error=worse[m].standard_error,
            p_better=better[m].p_adjusted, p_worse=worse[m].p_adjusted,
        )
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
    return Judgement(verdict, len(rows), positives, serving, shadow, comparisons, why)


def _utc(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def verdict_event(
    policy: MonitorPolicy,
    pair: Pair,
    judged: Judgement,
    rows: list[PairedRow],
    action: ShadowAction,
) -> DriftEvent:
    spec = policy.shadow
    times = [r[0] for r in rows] or [pair.first_seen]
    deadline = _utc(pair.first_seen) + timedelta(hours=spec.deadline_hours)
    shadow = ShadowVerdict(
        version=pair.shadow, verdict=judged.verdict, action=action, rows=judged.rows,
        positives=judged.positives, serving_metrics=judged.serving, shadow_metrics=judged.shadow,
        comparisons=judged.comparisons, first_seen=_utc(pair.first_seen), deadline=deadline,
        reason=judged.reason,
    )  # fmt: skip
    metrics = {"rows": float(judged.rows), "positives": float(judged.positives)}
    for c in judged.comparisons:
        metrics[f"serving_{c.metric}"], metrics[f"shadow_{c.metric}"] = c.serving, c.shadow
        metrics[f"p_better_{c.metric}"], metrics[f"p_worse_{c.metric}"] = c.p_better, c.p_worse
    return DriftEvent(
        kind="shadow_verdict", model_name=policy.model, model_version=pair.serving,
        window=Window(start=_utc(min(times)), end=_utc(max(times)), row_count=len(rows)),
        reference_profile=f"models:/{policy.model}/{pair.serving}", metrics=metrics,
        shadow=shadow,
    )  # fmt: skip


def judge_due(
    policy: MonitorPolicy, join: ShadowJoin, label_watermark: float
) -> list[tuple[Pair, Judgement, DriftEvent | None]]:
    """Inside the batch's transaction: judge every open pair with ``step`` new paired rows,
    or whose deadline the labels have passed; return each judgement and its event."""
    spec = policy.shadow
    out: list[tuple[Pair, Judgement, DriftEvent | None]] = []
    for pair in join.pairs():
        if pair.closed is not None:
            continue
        final = not pair.deadline_said and (
            pair.first_seen + spec.deadline_hours * HOUR <= label_watermark
        )
        if pair.since_eval < spec.step and not final:
            continue
        rows = join.paired(pair.serving, pair.shadow)
        judged = judge_rows(policy, rows)
        event = None
        if judged.verdict == "better":
            event = verdict_event(policy, pair, judged, rows, "promote")
            join.update_pair(pair, closed="better")
        elif judged.verdict == "worse":
            event = verdict_event(policy, pair, judged, rows, "remove")
            join.update_pair(pair, closed="worse")
        elif final:
            action = spec.on_deadline
            event = verdict_event(policy, pair, judged, rows, action)
            closed = None if action == "keep" else "unknown"
            join.update_pair(pair, closed=closed, deadline_said=True)
        else:
            join.update_pair(pair)
        out.append((pair, judged, event))
    return out
