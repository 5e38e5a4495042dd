"""The drift library on real whylogs profiles: policy loading, tests, corrections."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from driftloop.drift import (
    Algorithm,
    DriftSpec,
    MonitorPolicy,
    PerformanceSpec,
    adjust,
    auc_variance,
    chi_square,
    compare,
    compare_metrics,
    load_policy,
)
from driftloop.profiles import profile_frame

ROOT = Path(__file__).resolve().parents[2]


def test_the_shipped_policy_loads_and_typos_are_errors(tmp_path):
    policy = load_policy(ROOT / "deploy" / "apps" / "fraud" / "monitor.yaml")
    assert policy.model == "fraud" and policy.window.rows
    raw = policy.model_dump()
    raw["drift"]["min_drifted_colums"] = 2
    with pytest.raises(ValidationError, match="min_drifted_colums"):
        MonitorPolicy.model_validate(raw)
    with pytest.raises(ValidationError, match="set rows, duration_s or both"):
        MonitorPolicy.model_validate({"model": "fraud", "window": {"rows": None}})
    with pytest.raises(ValidationError, match="min_rows"):
        MonitorPolicy.model_validate({"model": "fraud", "window": {"rows": 10, "min_rows": 20}})


def test_holm_is_never_stricter_than_bonferroni_and_keeps_the_order():
    p = [0.001, 0.04, 0.03, 0.5, 0.0001]
    holm, bonf = adjust(p, "holm"), adjust(p, "bonferroni")
    assert all(h <= b for h, b in zip(holm, bonf, strict=True))
    assert bonf == [min(1.0, x * 5) for x in p]
    order = np.argsort(p)
    assert list(np.array(holm)[order]) == sorted(holm)
    assert holm[4] == pytest.approx(0.0005) and holm[0] == pytest.approx(0.004)
    assert adjust(p, "none") == p


def test_chi_square_weighs_rare_unseen_values_by_their_share():
    ref = {"a": 5000.0, "b": 3000.0, "c": 2000.0}
    same = chi_square({"a": 500, "b": 300, "c": 200}, ref)
    assert same[1] > 0.5 and same[2] == pytest.approx(0.0)
    one_odd = chi_square({"a": 500, "b": 300, "c": 199, "zzz": 1}, ref)
    assert one_odd[2] < 0.01  # one row in a thousand: a tiny effect, whatever its p-value
    new = chi_square({"a": 460, "b": 276, "c": 184, "crypto": 80}, ref)
    assert new[1] < 1e-6 and new[2] == pytest.approx(0.08, abs=1e-6)


def test_chi_square_tests_two_samples_so_a_small_reference_is_no_false_alarm():
    """A retrained version's reference is a few thousand post-change rows: a sample like
    the window, not exact shares. The test is scipy's test of homogeneity on the two
    samples, and windows drawn from the reference's own distribution are flagged at alpha."""
    from scipy import stats  # type: ignore[import-untyped]

    observed = {"a": 430.0, "b": 310.0, "c": 160.0, "d": 100.0}
    reference = {"a": 1900.0, "b": 1150.0, "c": 600.0, "d": 350.0}
    statistic, p, _ = chi_square(observed, reference)
    table = [list(observed.values()), list(reference.values())]
    scipy_test = stats.chi2_contingency(table, correction=False)
    assert statistic == pytest.approx(scipy_test.statistic)
    assert p == pytest.approx(scipy_test.pvalue)

    rng = np.random.default_rng(3)
    shares = rng.dirichlet(np.full(15, 2.0))
    names = [f"c{i}" for i in range(15)]
    flagged = 0
    for _ in range(400):
        ref = dict(zip(names, rng.multinomial(4000, shares).astype(float), strict=True))
        win = dict(zip(names, rng.multinomial(1000, shares).astype(float), strict=True))
        flagged += chi_square(win, ref)[1] < 0.01
    assert flagged / 400 <= 0.025, flagged  # alpha is 0.01; three standard errors above it


def _views(shift: float, n: int = 2000, seed: int = 0):
    rng = np.random.default_rng(seed)
    ref = pd.DataFrame({"x": rng.normal(0, 1, 20_000), "c": rng.choice(["a", "b"], 20_000)})
    win = pd.DataFrame({"x": rng.normal(shift, 1, n), "c": rng.choice(["a", "b"], n)})
    return profile_frame(win), profile_frame(ref)


@pytest.mark.parametrize("shift, expected", [(0.0, "NO_DRIFT"), (0.5, "DRIFT")])
def test_ks_and_chi_square_on_whylogs_profiles(shift, expected):
    win, ref = _views(shift)
    plan: dict[str, tuple[Algorithm, Any, Any]] = {
        "x": ("ks", win.get_column("x"), ref.get_column("x")),
        "c": ("chi-square", win.get_column("c"), ref.get_column("c")),
    }
    tests = {t.column: t for t in compare(plan, DriftSpec())}
    assert tests["x"].category == expected
    assert tests["c"].category == "NO_DRIFT"
    assert tests["x"].p_adjusted is not None and tests["x"].p_value is not None
    assert tests["x"].p_adjusted >= tests["x"].p_value


@pytest.mark.parametrize("missing_share, expected", [(0.0, "NO_DRIFT"), (0.12, "DRIFT")])
def test_missing_categories_are_a_category_of_their_own(missing_share, expected):
    """Payments at merchants the feature table has never seen (the lookup misses, the
    category is null) shift the column even when the known categories keep their shares."""
    rng = np.random.default_rng(5)
    ref = pd.DataFrame({"c": rng.choice(["a", "b", "c"], 20_000, p=[0.5, 0.3, 0.2])})
    seen = rng.choice(["a", "b", "c"], 1000, p=[0.5, 0.3, 0.2]).astype(object)
    seen[rng.random(1000) < missing_share] = None
    win = pd.DataFrame({"c": seen})
    wv, rv = profile_frame(win), profile_frame(ref)
    (test,) = compare({"c": ("chi-square", wv.get_column("c"), rv.get_column("c"))}, DriftSpec())
    assert test.category == expected, test
    if expected == "DRIFT":
        assert test.effect == pytest.approx(missing_share, abs=0.03)


def test_a_large_window_flags_a_tiny_shift_by_p_value_but_not_by_effect():
    win, ref = _views(0.06, n=20_000, seed=3)
    (test,) = compare({"x": ("ks", win.get_column("x"), ref.get_column("x"))}, DriftSpec())
    assert test.p_adjusted is not None and test.p_adjusted < 0.01
    assert test.category == "POSSIBLE_DRIFT"


def test_hellinger_has_no_p_value_and_judges_by_distance():
    win, ref = _views(1.0)
    (test,) = compare({"x": ("hellinger", win.get_column("x"), ref.get_column("x"))}, DriftSpec())
    assert test.p_value is None and test.category == "DRIFT" and 0 < test.statistic <= 1


# --- performance: a window's metrics against the reference's


def _scored(
    rng: np.random.Generator, n: int, rate: float, separation: float
) -> tuple[np.ndarray, np.ndarray]:
    """Binormal scores: positives ``separation`` standard deviations above negatives."""
    y = rng.random(n) < rate
    scores = rng.normal(0.0, 1.0, n) + separation * y
    return y, scores


def _metrics(y: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, float]:
    from sklearn.metrics import roc_auc_score  # type: ignore[import-untyped]

    positives = int(y.sum())
    return {
        "rows": float(len(y)),
        "positives": float(positives),
        "roc_auc": float(roc_auc_score(y, scores)),
        "recall_at_threshold": float(((scores >= threshold) & y).sum() / positives),
    }


@pytest.mark.parametrize("shape", ["exponential", "binormal"])
def test_hanley_mcneil_matches_the_spread_of_auc_and_errs_wide(shape):
    """Exact for the negative-exponential scores it was derived on; on binormal scores of
    the same AUC it overstates the spread (a conservative test), never understates it."""
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(5)
    y = np.zeros(2000, bool)
    y[:40] = True
    aucs = []
    for _ in range(400):
        if shape == "exponential":  # AUC = 24 / 25
            scores = rng.exponential(np.where(y, 24.0, 1.0))
        else:
            scores = rng.normal(0.0, 1.0, 2000) + 2.5 * y
        aucs.append(roc_auc_score(y, scores))
    spread, predicted = float(np.std(aucs)), auc_variance(float(np.mean(aucs)), 40, 1960) ** 0.5
    if shape == "exponential":
        assert spread == pytest.approx(predicted, rel=0.15)
    else:
        assert spread < predicted < 2 * spread
    assert auc_variance(0.96, 400, 19600) < auc_variance(0.96, 40, 1960) / 5


def _reference(rng: np.random.Generator, threshold: float) -> dict[str, float]:
    return _metrics(*_scored(rng, 4000, 0.02, 2.5), threshold)


def test_an_unchanged_model_is_rarely_called_worse_by_drop_and_significance():
    """Fresh holdouts and windows of one model: the drop alone is over ``max_drop`` often;
    with the test (the holdout's own error counted) about ``alpha`` of the time."""
    rng = np.random.default_rng(11)
    spec = PerformanceSpec(max_drop={"roc_auc": 0.02, "recall_at_threshold": 0.05}, alpha=0.01)
    naive = exact = tested = 0
    for _ in range(300):
        ref = _reference(rng, 1.5)
        now = _metrics(*_scored(rng, 2000, 0.02, 2.5), 1.5)
        tests = compare_metrics(now, ref, spec)
        naive += any(t.drop > t.max_drop for t in tests)
        tested += any(t.degraded for t in tests)
        alone = {k: v for k, v in ref.items() if k not in ("positives", "rows")}
        exact += any(t.degraded for t in compare_metrics(now, alone, spec))
    assert naive > 45, naive
    assert tested <= 6, tested
    assert exact > tested  # a holdout is a sample too: taken as exact, it calls more


def test_a_worse_model_is_called_worse_and_the_reference_error_counts():
    rng = np.random.default_rng(12)
    spec = PerformanceSpec(max_drop={"roc_auc": 0.02, "recall_at_threshold": 0.1}, alpha=0.01)
    ref = _reference(rng, 1.5)
    caught = 0
    for _ in range(100):
        now = _metrics(*_scored(rng, 2000, 0.02, 1.0), 1.5)
        tests = {t.metric: t for t in compare_metrics(now, ref, spec)}
        caught += tests["recall_at_threshold"].degraded and tests["roc_auc"].degraded
    assert caught >= 95
    now = _metrics(*_scored(rng, 2000, 0.02, 1.8), 1.5)
    exact = {k: v for k, v in ref.items() if k not in ("positives", "rows")}
    with_error = {t.metric: t for t in compare_metrics(now, ref, spec)}
    without = {t.metric: t for t in compare_metrics(now, exact, spec)}
    for metric, test in with_error.items():
        assert test.drop == pytest.approx(without[metric].drop)
        assert test.standard_error > without[metric].standard_error
        assert test.p_value > without[metric].p_value
    wider = spec.model_copy(update={"dispersion": {"recall_at_threshold": 4.0}})
    inflated = {t.metric: t for t in compare_metrics(now, ref, wider)}
    recall = with_error["recall_at_threshold"].standard_error
    assert inflated["recall_at_threshold"].standard_error == pytest.approx(2 * recall)
    assert inflated["roc_auc"].standard_error == with_error["roc_auc"].standard_error
    with pytest.raises(ValidationError, match="dispersion below 1"):
        PerformanceSpec(dispersion={"roc_auc": 0.5})
    assert compare_metrics({**now, "positives": 0.0}, ref, spec) == []
