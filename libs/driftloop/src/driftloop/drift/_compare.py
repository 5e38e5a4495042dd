"""Per-column drift of a window's whylogs profile against a reference profile.

Numbers: whylogs' KS test on the two KLL sketches (statistic D, the effect) or its
Hellinger distance. Categories: a chi-square test of homogeneity on whylogs' frequent-items
sketches of the two samples, with the total variation distance as the effect. whylogs' own
``ChiSquare`` truncates expected counts to integers and returns p = 0 as soon as one
category has an expected count below one (any unseen or rare value), so a single odd row
would read as drift; here expected counts stay fractional and cells expected below five
are pooled, so an unseen category adds to the statistic instead of making it infinite.

Performance: a metric of labelled predictions against the reference's (holdout) value,
with a one-sided z-test from the standard errors of both (see :func:`compare_metrics`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from driftloop.drift._policy import Algorithm, DriftSpec, PerformanceSpec

if TYPE_CHECKING:
    from whylogs.core.view.column_profile_view import ColumnProfileView

Category = Literal["NO_DRIFT", "POSSIBLE_DRIFT", "DRIFT"]


@dataclass(frozen=True)
class ColumnTest:
    """One column's comparison; ``p_adjusted`` is corrected for the window's tests."""

    column: str
    algorithm: Algorithm
    statistic: float
    p_value: float | None
    p_adjusted: float | None
    effect: float
    min_effect: float
    category: Category

    @property
    def drifted(self) -> bool:
        return self.category == "DRIFT"


def _ks(target: ColumnProfileView, reference: ColumnProfileView) -> tuple[float, float, float]:
    from whylogs.viz.drift.column_drift_algorithms import KS

    score = KS().calculate(target, reference)
    if score is None or score.statistic is None or score.pvalue is None:
        raise _Untestable("no numeric values")
    return float(score.statistic), float(score.pvalue), float(score.statistic)


def _hellinger(
    target: ColumnProfileView, reference: ColumnProfileView
) -> tuple[float, None, float]:
    import warnings

    from whylogs.viz.drift.column_drift_algorithms import Hellinger

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        score = Hellinger().calculate(target, reference)
    if score is None or score.statistic is None:
        raise _Untestable("no numeric values")
    return float(score.statistic), None, float(score.statistic)


def frequencies(column: ColumnProfileView) -> dict[str, float]:
    """Estimated count per category from the column's frequent-items sketch."""
    from whylogs.viz.utils.frequent_items_calculations import get_frequent_stats

    stats: Any = get_frequent_stats(column, config=None)
    if not stats:
        return {}
    return {str(item["value"]): float(item["estimate"]) for item in stats["frequent_items"]}


def chi_square(
    observed: Mapping[str, float], reference: Mapping[str, float]
) -> tuple[float, float, float]:
    """(chi-square statistic, p-value, total variation distance) of observed counts
    against the reference's counts: a test of homogeneity of the two samples, so a small
    reference (the few thousand post-change rows a retrained version's reference is made
    of) weighs as the sample it is. A goodness-of-fit test against the reference's shares
    would treat them as exact and overstate the statistic by about ``1 + n / ref_n``: on
    the demo's loop, 1,000-row windows of the retrained version against its 4,213-row
    reference read as drifted on ``merchant_category`` at a total variation of 0.055-0.08,
    the level two samples of that size differ by. Against a reference much larger than
    the window the two tests agree."""
    from scipy import stats  # type: ignore[import-untyped]

    n, ref_n = sum(observed.values()), sum(reference.values())
    if n <= 0 or ref_n <= 0:
        raise _Untestable("no categorical values")
    cats = sorted(set(observed) | set(reference))
    total = n + ref_n
    cells: list[tuple[float, float, float]] = []  # observed count, reference count, pooled share
    pooled = [0.0, 0.0]
    for cat in cats:
        obs, ref = observed.get(cat, 0.0), reference.get(cat, 0.0)
        share = (obs + ref) / total
        if min(n, ref_n) * share < 5:  # an expected count under five: pooled
            pooled[0], pooled[1] = pooled[0] + obs, pooled[1] + ref
        else:
            cells.append((obs, ref, share))
    if pooled[0] + pooled[1] > 0:
        cells.append((pooled[0], pooled[1], (pooled[0] + pooled[1]) / total))
    statistic = sum(
        (obs - n * share) ** 2 / (n * share) + (ref - ref_n * share) ** 2 / (ref_n * share)
        for obs, ref, share in cells
    )
    p = float(stats.chi2.sf(statistic, max(1, len(cells) - 1)))
    tvd = 0.5 * sum(abs(observed.get(c, 0.0) / n - reference.get(c, 0.0) / ref_n) for c in cats)
    return float(statistic), p, float(tvd)


MISSING = "<missing>"
"""The category of a missing value (null or NaN) in a categorical column's test."""


def _with_missing(column: ColumnProfileView) -> dict[str, float]:
    """The column's category counts with its missing values as one more category.

    Frequent-items sketches hold no nulls, so without this a lookup that stops finding
    its key — a merchant the feature table has never seen — would not move the test,
    whatever share of the traffic it takes."""
    counts = frequencies(column)
    metric: Any = column.get_metric("counts")
    missing = float(metric.null.value) if metric is not None else 0.0  # NaN included
    if missing > 0:
        counts[MISSING] = counts.get(MISSING, 0.0) + missing
    return counts


def _chi_square(
    target: ColumnProfileView, reference: ColumnProfileView
) -> tuple[float, float, float]:
    return chi_square(_with_missing(target), _with_missing(reference))


class _Untestable(ValueError):
    pass


def test_column(
    target: ColumnProfileView, reference: ColumnProfileView, algorithm: Algorithm
) -> tuple[float, float | None, float] | None:
    """(statistic, p-value or None, effect), or None when a side has no values to test."""
    try:
        if algorithm == "ks":
            return _ks(target, reference)
        if algorithm == "hellinger":
            return _hellinger(target, reference)
        return _chi_square(target, reference)
    except _Untestable:
        return None


def adjust(p_values: Sequence[float], method: Literal["holm", "bonferroni", "none"]) -> list[float]:
    """p-values corrected for testing them together (family-wise error rate)."""
    m = len(p_values)
    if method == "none" or m == 0:
        return list(p_values)
    if method == "bonferroni":
        return [min(1.0, p * m) for p in p_values]
    order = sorted(range(m), key=lambda i: p_values[i])
    out = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        out[i] = running
    return out


def compare(
    columns: Mapping[str, tuple[Algorithm, ColumnProfileView | None, ColumnProfileView | None]],
    spec: DriftSpec,
) -> list[ColumnTest]:
    """Test each column (algorithm, window column, reference column) and judge it.

    Columns missing on either side, or without values, are left out of the result."""
    raw: list[tuple[str, Algorithm, float, float | None, float]] = []
    for name, (algorithm, target, reference) in columns.items():
        if target is None or reference is None:
            continue
        result = test_column(target, reference, algorithm)
        if result is not None and all(math.isfinite(x) for x in (result[0], result[2])):
            raw.append((name, algorithm, *result))
    tested = [p for *_, p, _ in raw if p is not None]
    adjusted = iter(adjust(tested, spec.correction))
    out = []
    for name, algorithm, statistic, p, effect in raw:
        p_adj = next(adjusted) if p is not None else None
        floor = spec.effect_for(name, algorithm)
        category = _category(effect >= floor, p_adj, spec.alpha)
        out.append(ColumnTest(name, algorithm, statistic, p, p_adj, effect, floor, category))
    return out


def _category(big: bool, p_adjusted: float | None, alpha: float) -> Category:
    """DRIFT: a large effect that is significant (or, without a p-value, large);
    POSSIBLE_DRIFT: one of the two; NO_DRIFT: neither."""
    significant = p_adjusted is not None and p_adjusted < alpha
    if big and (significant or p_adjusted is None):
        return "DRIFT"
    if big or significant:
        return "POSSIBLE_DRIFT"
    return "NO_DRIFT"


# --- performance: a window's metric against the reference's (holdout) value


@dataclass(frozen=True)
class MetricTest:
    """One performance metric of an evaluation against the reference's.

    ``drop`` is reference minus current; ``p_value`` is one-sided (current below the
    reference) and ``p_adjusted`` corrected for the evaluation's metrics."""

    metric: str
    reference: float
    current: float
    drop: float
    standard_error: float
    p_value: float
    p_adjusted: float
    max_drop: float
    alpha: float

    @property
    def degraded(self) -> bool:
        """Worse by more than ``max_drop``, and significantly worse."""
        return self.drop > self.max_drop and self.p_adjusted < self.alpha


def auc_variance(auc: float, positives: float, negatives: float) -> float:
    """Hanley & McNeil (1982): the variance of a ROC-AUC estimated on ``positives`` and
    ``negatives`` independent rows."""
    if positives <= 0 or negatives <= 0:
        return math.inf
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    square = auc * auc
    spread = auc * (1 - auc) + (positives - 1) * (q1 - square) + (negatives - 1) * (q2 - square)
    return max(0.0, spread) / (positives * negatives)


def _counts(metrics: Mapping[str, float]) -> tuple[float, float] | None:
    """(positives, negatives) behind a set of metrics, when it says."""
    positives, rows = metrics.get("positives"), metrics.get("rows")
    if positives is None or rows is None or positives <= 0 or rows <= positives:
        return None
    return positives, rows - positives


def _variance(
    metric: str,
    current: float,
    reference: float,
    now: tuple[float, float],
    ref: tuple[float, float] | None,
) -> float:
    """Variance of reference minus current; the reference's own error counts when its
    counts are known, else the reference is taken as exact."""
    if metric == "recall_at_threshold":
        # two proportions of positives, pooled under "no change"
        if ref is None:
            return reference * (1 - reference) / now[0]
        pooled = (current * now[0] + reference * ref[0]) / (now[0] + ref[0])
        return pooled * (1 - pooled) * (1 / now[0] + 1 / ref[0])
    if metric == "roc_auc":
        own = auc_variance(current, *now)
        return own + (auc_variance(reference, *ref) if ref else 0.0)
    # PR-AUC (average precision): the logit interval of Boyd et al. (2013), whose
    # variance on the logit scale is 1 / (P * AP * (1 - AP)), back on the AP scale by the
    # delta method: AP * (1 - AP) / P.
    own = current * (1 - current) / now[0]
    return own + (reference * (1 - reference) / ref[0] if ref else 0.0)


def compare_metrics(
    current: Mapping[str, float], reference: Mapping[str, float], spec: PerformanceSpec
) -> list[MetricTest]:
    """Each metric of ``spec.max_drop`` that both sides have: its drop, and a one-sided
    z-test that the current value is below the reference's (variances inflated by
    ``spec.dispersion``), corrected over the metrics tested."""
    now = _counts(current)
    if now is None:
        return []
    ref = _counts(reference)
    names = [m for m in spec.max_drop if m in current and m in reference]
    raw: list[tuple[str, float, float, float, float]] = []
    for name in names:
        value, expected = current[name], reference[name]
        drop = expected - value
        inflation = spec.dispersion.get(name, 1.0)
        se = math.sqrt(inflation * _variance(name, value, expected, now, ref))
        if se > 0 and math.isfinite(se):
            p = 0.5 * math.erfc(drop / se / math.sqrt(2))
        else:
            p = 0.0 if drop > 0 and se == 0 else 1.0
        raw.append((name, expected, value, se, p))
    adjusted = adjust([r[4] for r in raw], spec.correction)
    drops = {str(k): v for k, v in spec.max_drop.items()}
    return [
        MetricTest(name, expected, value, expected - value, se, p, p_adj, drops[name], spec.alpha)
        for (name, expected, value, se, p), p_adj in zip(raw, adjusted, strict=True)
    ]
