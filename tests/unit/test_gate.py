"""The promotion gate's verdicts, and the search space a spec may declare."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from driftloop.training import Distribution, GateSpec, TuneSpec, judge

SPEC = GateSpec(
    min_pr_auc_lift=0.0, min_pr_auc_over_baseline=0.05, max_brier_increase=0.01,
    min_holdout_positives=10,
)  # fmt: skip
GOOD = {"pr_auc": 0.80, "brier": 0.020, "positives": 40.0}
BASELINE = {"pr_auc": 0.60, "brier": 0.030}


def test_a_first_model_is_judged_against_the_baseline_alone():
    verdict = judge(SPEC, GOOD, BASELINE, champion=None)
    assert verdict.passed
    assert any("no champion" in r for r in verdict.reasons)
    assert not judge(SPEC, {**GOOD, "pr_auc": 0.62}, BASELINE, None).passed


def test_a_challenger_must_not_lose_to_the_champion():
    better = judge(SPEC, GOOD, BASELINE, {"pr_auc": 0.75, "brier": 0.02}, "sha256-aaaa")
    assert better.passed and better.champion_version == "sha256-aaaa"
    worse = judge(SPEC, GOOD, BASELINE, {"pr_auc": 0.85, "brier": 0.02}, "sha256-aaaa")
    assert not worse.passed
    failed = [r for r in worse.reasons if r.startswith("FAIL")]
    assert len(failed) == 1 and "0.8000" in failed[0] and "0.8500" in failed[0]


def test_calibration_may_not_degrade_beyond_the_limit():
    verdict = judge(SPEC, {**GOOD, "brier": 0.05}, BASELINE, {"pr_auc": 0.7, "brier": 0.02})
    assert not verdict.passed
    assert any(r.startswith("FAIL") and "Brier" in r for r in verdict.reasons)


def test_too_few_positives_fail_and_an_unscorable_champion_is_not_a_pass():
    assert not judge(SPEC, {**GOOD, "positives": 3.0}, BASELINE, None).passed
    verdict = judge(SPEC, GOOD, BASELINE, None, "sha256-bbbb", champion_error="no such file")
    assert not verdict.passed and "no such file" in verdict.reasons[-1]


def test_search_distributions_are_strict():
    assert Distribution(randint=(2, 6)).randint == (2, 6)
    with pytest.raises(ValidationError, match="exactly one"):
        Distribution(uniform=(0.1, 0.2), randint=(1, 3))
    with pytest.raises(ValidationError, match="low < high"):
        Distribution(uniform=(0.5, 0.1))
    with pytest.raises(ValidationError, match="positive"):
        Distribution(loguniform=(0.0, 1.0))
    with pytest.raises(ValidationError, match="set by the trainer"):
        TuneSpec(space={"seed": Distribution(randint=(1, 9))})
    with pytest.raises(ValidationError, match="needs a search space"):
        TuneSpec(enabled=True)


def _booster(weight: float, seed: int = 0) -> tuple[object, np.ndarray, np.ndarray]:
    """A booster trained with positive-class ``weight`` on data with a 5 % fraud rate,
    and its scores on fresh rows with their labels."""
    import xgboost

    rng = np.random.default_rng(seed)

    def rows(n: int) -> tuple[np.ndarray, np.ndarray]:
        x = rng.normal(size=(n, 3))
        logit = -3.4 + 1.2 * x[:, 0]
        return x, (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)

    x, y = rows(20_000)
    params = {"objective": "binary:logistic", "max_depth": 2, "eta": 0.3, "seed": seed,
              "nthread": 1, "scale_pos_weight": weight}  # fmt: skip
    booster = xgboost.train(params, xgboost.DMatrix(x, label=y), num_boost_round=40)
    test_x, test_y = rows(20_000)
    return booster, booster.predict(xgboost.DMatrix(test_x)), test_y


def test_brier_judges_a_weighted_model_on_the_data_s_class_balance():
    """A model trained with scale_pos_weight scores inflated odds; Brier of the raw scores
    would fail it against an unweighted champion for its weighting alone."""
    from sklearn.metrics import brier_score_loss  # type: ignore[import-untyped]

    from driftloop.training._evaluate import metrics_at, positive_weight

    plain, plain_scores, y = _booster(1.0)
    weighted, weighted_scores, y_w = _booster(19.0)
    assert positive_weight(plain) == 1.0 and positive_weight(weighted) == pytest.approx(19.0)
    raw = brier_score_loss(y_w, weighted_scores)
    corrected = metrics_at(y_w, weighted_scores, 0.5, positive_weight(weighted))["brier"]
    reference = metrics_at(y, plain_scores, 0.5, positive_weight(plain))["brier"]
    assert raw > reference + 0.05, "the weighted model's raw scores are far off calibration"
    assert abs(corrected - reference) < 0.003, (corrected, reference)
    # ranking metrics do not move with the correction
    assert metrics_at(y_w, weighted_scores, 0.5, 19.0)["pr_auc"] == pytest.approx(
        metrics_at(y_w, weighted_scores, 0.5)["pr_auc"]
    )
