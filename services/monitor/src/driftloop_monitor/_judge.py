"""A closed window judged against its version's reference: the audit record, and the
drift event when the policy says so."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from driftloop.drift import (
    Algorithm,
    ColumnRecord,
    ColumnTest,
    MetricTest,
    MonitorPolicy,
    WindowRecord,
    compare,
    compare_metrics,
)
from driftloop.drift import column_summary as summary
from driftloop.events import ColumnDrift, DriftEvent, Window
from driftloop.profiles import SCORE_COLUMN, profile_frame, serialize
from driftloop_monitor._checkpoint import Joined
from driftloop_monitor._frame import window_frame
from driftloop_monitor._references import Reference
from driftloop_monitor._settle import Basis
from driftloop_monitor._windows import ClosedWindow

if TYPE_CHECKING:
    from whylogs.core import DatasetProfileView

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Judged:
    record: WindowRecord
    event: DriftEvent | None
    tests: list[ColumnTest]
    profile: bytes | None = None


def _guess_types(window: ClosedWindow) -> tuple[list[str], dict[str, frozenset[str] | None]]:
    """Without a reference: text columns are categories, the rest numbers (for the audit)."""
    names = sorted({k for r in window.rows for k in r.features})
    text = {k for r in window.rows for k, v in r.features.items() if isinstance(v, str)}
    return [n for n in names if n not in text], dict.fromkeys(sorted(text))


def _plan(
    policy: MonitorPolicy, ref: Reference, window: DatasetProfileView, bases: dict[str, Basis]
) -> dict[str, tuple[Algorithm, Any, Any]]:
    spec = policy.drift
    known = [*ref.numeric, *ref.categorical]
    wanted = known if spec.columns == "all" else [c for c in spec.columns if c in known]
    plan: dict[str, tuple[Algorithm, Any, Any]] = {}
    for name in wanted:
        if name in spec.exclude:
            continue
        rule = spec.overrides.get(name)
        default: Algorithm = spec.categorical if name in ref.categorical else spec.numeric
        algorithm = rule.algorithm if rule and rule.algorithm else default
        plan[name] = (algorithm, window.get_column(name), _reference(name, ref, bases))
    if spec.score:
        plan[SCORE_COLUMN] = (spec.numeric, window.get_column(SCORE_COLUMN),
                              ref.scores.get_column(SCORE_COLUMN))  # fmt: skip
    return plan


def _reference(column: str, ref: Reference, bases: dict[str, Basis]) -> Any:
    basis = bases.get(column)
    if basis is not None and basis.profile is not None:
        return basis.profile.get_column(column)
    source = ref.scores if column == SCORE_COLUMN else ref.features
    return source.get_column(column)


def judge_drift(
    policy: MonitorPolicy,
    window: ClosedWindow,
    ref: Reference | None,
    streak: int,
    bases: dict[str, Basis] | None = None,
) -> tuple[Judged, int]:
    """The window's verdict and the streak of drifted windows after it. ``bases``: the
    columns tested against something else than the training reference (see ``_settle``);
    settling and adopted columns are tested and recorded but not counted."""
    bases = bases or {}
    if ref is not None:
        numeric, categorical = ref.numeric, dict[str, frozenset[str] | None](ref.categorical)
    else:
        numeric, categorical = _guess_types(window)
    frame, quality = window_frame(window.rows, numeric, categorical)
    view = profile_frame(frame)
    tests: list[ColumnTest] = []
    if len(window.rows) < policy.window.min_rows:
        verdict = "too_small"
    elif ref is None:
        verdict = "no_reference"
    else:
        plan = _plan(policy, ref, view, bases)
        tests = compare(plan, policy.drift)
        drifted = sum(t.drifted for t in _counted(tests, bases))
        verdict = "drift" if drifted >= policy.drift.min_drifted_columns else "no_drift"
        streak = streak + 1 if verdict == "drift" else 0
    columns = [_column_record(t, view, ref, bases) for t in tests]
    w = Window(start=window.start, end=window.end, row_count=len(window.rows))
    event = None
    if verdict == "drift" and ref is not None and streak >= policy.drift.consecutive_windows:
        event = DriftEvent(
            kind="data_drift", model_name=policy.model, model_version=window.version, window=w,
            reference_profile=ref.uri,
            columns=[ColumnDrift(column=t.column, algorithm=t.algorithm, statistic=t.statistic,
                                 p_value=t.p_value, category=t.category)
                     for t in _counted(tests, bases)],
            metrics=_drift_metrics(tests, streak, bases),
        )  # fmt: skip
    record = WindowRecord(
        kind="data", model=policy.model, version=window.version, start=w.start, end=w.end,
        row_count=w.row_count, verdict=verdict, streak=streak,
        event_id=event.event_id if event else None, reference_profile=ref.uri if ref else None,
        columns=columns, quality={c: q for c, q in quality.items() if any(q.values())},
        metrics=_drift_metrics(tests, streak, bases) if tests else {},
    )  # fmt: skip
    return Judged(record, event, tests, serialize(view)), streak


def _counted(tests: list[ColumnTest], bases: dict[str, Basis]) -> list[ColumnTest]:
    return [t for t in tests if t.column not in bases or bases[t.column].counted]


def _drift_metrics(
    tests: list[ColumnTest], streak: int, bases: dict[str, Basis]
) -> dict[str, float]:
    counted = _counted(tests, bases)
    out = {
        "tested_columns": float(len(tests)),
        "drifted_columns": float(sum(t.drifted for t in counted)),
        "settling_columns": float(len(tests) - len(counted)),
        "streak": float(streak),
    }
    out.update({f"effect.{t.column}": t.effect for t in counted if t.drifted})
    return out


def _column_record(
    test: ColumnTest, view: DatasetProfileView, ref: Reference | None, bases: dict[str, Basis]
) -> ColumnRecord:
    categorical = test.algorithm == "chi-square"
    reference = _reference(test.column, ref, bases) if ref is not None else None
    basis = bases.get(test.column)
    return ColumnRecord(
        column=test.column, algorithm=test.algorithm, statistic=test.statistic,
        p_value=test.p_value, p_adjusted=test.p_adjusted, effect=test.effect,
        min_effect=test.min_effect, category=test.category,
        window=summary(view.get_column(test.column), categorical),
        reference=summary(reference, categorical), basis=basis.label if basis else None,
    )  # fmt: skip


def performance_metrics(rows: list[Joined]) -> dict[str, float]:
    """ROC-AUC and PR-AUC of the scores, recall and precision of the logged decisions."""
    import numpy as np
    from sklearn.metrics import average_precision_score, roc_auc_score  # type: ignore[import-untyped]

    scores = np.array([r[1] for r in rows])
    decisions = np.array([r[2] for r in rows], dtype=bool)
    y = np.array([r[3] for r in rows], dtype=bool)
    positives, flagged = int(y.sum()), int(decisions.sum())
    out = {"rows": float(len(rows)), "positives": float(positives)}
    if 0 < positives < len(rows):
        out["roc_auc"] = float(roc_auc_score(y, scores))
        out["pr_auc"] = float(average_precision_score(y, scores))
    if positives:
        out["recall_at_threshold"] = float((decisions & y).sum() / positives)
    if flagged:
        out["precision_at_threshold"] = float((decisions & y).sum() / flagged)
    return out


def judge_performance(
    policy: MonitorPolicy, version: str, rows: list[Joined], ref: Reference | None, streak: int
) -> tuple[Judged, int]:
    """An evaluation's verdict (see ``PerformanceSpec``) and the streak after it."""
    spec = policy.performance
    metrics = performance_metrics(rows)
    tests: list[MetricTest] = []
    if metrics["positives"] < spec.min_positives:
        verdict = "too_few_positives"
    elif ref is None:
        verdict = "no_reference"
    else:
        tests = compare_metrics(metrics, ref.metrics, spec)
        worse = sum(t.degraded for t in tests)
        verdict = "degraded" if worse >= spec.min_degraded_metrics else "ok"
        streak = streak + 1 if verdict == "degraded" else 0
    for t in tests:
        metrics[f"reference_{t.metric}"] = t.reference
        metrics[f"drop_{t.metric}"] = t.drop
        metrics[f"se_{t.metric}"] = t.standard_error
        metrics[f"p_{t.metric}"] = t.p_adjusted
    times = [r[0] for r in rows]
    w = Window(start=datetime.fromtimestamp(min(times), UTC),
               end=datetime.fromtimestamp(max(times), UTC), row_count=len(rows))  # fmt: skip
    event = None
    if verdict == "degraded" and ref is not None and streak >= spec.consecutive_windows:
        event = DriftEvent(kind="performance_degraded", model_name=policy.model,
                           model_version=version, window=w, reference_profile=ref.metadata_uri,
                           metrics={**metrics, "streak": float(streak)})  # fmt: skip
    record = WindowRecord(
        kind="performance", model=policy.model, version=version, start=w.start, end=w.end,
        row_count=w.row_count, verdict=verdict, streak=streak,
        event_id=event.event_id if event else None,
        reference_profile=ref.metadata_uri if ref else None, metrics=metrics,
    )  # fmt: skip
    return Judged(record, event, []), streak
