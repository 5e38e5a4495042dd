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
GOOD = {"pr_auc": 0.80, "brier": 0.020, "positives": 40.0, "threshold": 0.62}
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


def test_a_challenger_without_an_operating_threshold_is_refused():
    """No score reached the target precision on the validation rows: however well it
    ranks, serving would refuse a model with no threshold (seen in a heal run: a
    challenger at post-change PR-AUC 0.56 against 0.26 promoted, then never served)."""
    ranks_well = {k: v for k, v in GOOD.items() if k != "threshold"}
    verdict = judge(SPEC, ranks_well, BASELINE, {"pr_auc": 0.3, "brier": 0.03}, "sha256-aaaa")
    assert not verdict.passed
    [refusal] = _failed(verdict)
    assert "no score reaches the target precision" in refusal
    assert "pass: an operating threshold: 0.6200" in judge(SPEC, GOOD, BASELINE, None).reasons[1]


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


# With a change point: judged on the post-change holdout rows.
POST_SPEC = SPEC.model_copy(update={"min_post_change_positives": 15})
CHAMPION = {"pr_auc": 0.78, "brier": 0.020, "recall_at_threshold": 0.70}
HEALED = {"pr_auc": 0.70, "brier": 0.030, "positives": 25.0, "rows": 400.0,
          "recall_at_threshold": 0.60}  # fmt: skip
STALE = {"pr_auc": 0.30, "brier": 0.040, "positives": 25.0, "rows": 400.0,
         "recall_at_threshold": 0.20}  # fmt: skip


def _failed(verdict) -> list[str]:
    return [r for r in verdict.reasons if r.startswith("FAIL")]


def test_without_a_change_point_the_gate_is_unchanged():
    for champion in (None, {"pr_auc": 0.75, "brier": 0.02}, {"pr_auc": 0.85, "brier": 0.02}):
        assert judge(POST_SPEC, GOOD, BASELINE, champion, "sha256-aaaa") == judge(
            SPEC, GOOD, BASELINE, champion, "sha256-aaaa", post_change=None
        )
        assert not any("post-change" in r for r in judge(SPEC, GOOD, BASELINE, champion).reasons)


def test_a_post_change_holdout_with_too_few_positives_is_refused():
    small = {**HEALED, "positives": 9.0, "rows": 120.0}
    verdict = judge(POST_SPEC, GOOD, BASELINE, CHAMPION, "sha256-aaaa",
                    post_change=small, champion_post_change=STALE)  # fmt: skip
    assert not verdict.passed
    [refusal] = _failed(verdict)
    assert "too small to judge" in refusal and "9 positives in 120 rows < 15" in refusal
    # no positive at all: only counts are measured, and still a refusal, not an error
    empty = judge(POST_SPEC, GOOD, BASELINE, None,
                  post_change={"positives": 0.0, "rows": 40.0})  # fmt: skip
    assert not empty.passed and "too small to judge" in _failed(empty)[0]


def test_a_challenger_that_wins_after_the_change_passes_though_it_trails_overall():
    # whole holdout: 0.80 vs 0.81, within the 0.02 tolerance; post-change: 0.70 vs 0.30
    verdict = judge(POST_SPEC, GOOD, BASELINE, {**CHAMPION, "pr_auc": 0.81}, "sha256-aaaa",
                    post_change=HEALED, champion_post_change=STALE)  # fmt: skip
    assert verdict.passed, verdict.reasons
    post = [r for r in verdict.reasons if "post-change PR-AUC" in r]
    assert post == ["pass: post-change PR-AUC 0.7000 - champion sha256-aaaa 0.3000 = +0.4000 "
                    ">= +0.0000"]  # fmt: skip
    # beyond the tolerance overall it fails, whatever it does after the change
    far = judge(POST_SPEC, GOOD, BASELINE, {**CHAMPION, "pr_auc": 0.83}, "sha256-aaaa",
                post_change=HEALED, champion_post_change=STALE)  # fmt: skip
    assert [r for r in _failed(far)] == [
        "FAIL: PR-AUC 0.8000 - champion sha256-aaaa 0.8300 = -0.0300 >= -0.0200"
    ]


def test_a_challenger_that_loses_after_the_change_fails_even_if_it_wins_overall():
    verdict = judge(POST_SPEC, GOOD, BASELINE, {**CHAMPION, "pr_auc": 0.60}, "sha256-aaaa",
                    post_change=STALE, champion_post_change=HEALED)  # fmt: skip
    assert not verdict.passed
    failed = _failed(verdict)
    assert len(failed) == 2
    assert "post-change PR-AUC 0.3000" in failed[0] and "0.7000" in failed[0]
    assert "post-change recall at threshold 0.2000" in failed[1] and "0.6000" in failed[1]


def test_post_change_recall_may_trail_the_champion_only_within_the_tolerance():
    def verdict(recall: float):
        ours = {**HEALED, "recall_at_threshold": recall}
        theirs = {**STALE, "recall_at_threshold": 0.5}
        return judge(POST_SPEC, GOOD, BASELINE, CHAMPION, "sha256-aaaa",
                     post_change=ours, champion_post_change=theirs)  # fmt: skip

    assert verdict(0.42).passed  # -0.08, within 0.1
    assert not verdict(0.36).passed  # -0.14
    assert "recall at threshold 0.3600" in _failed(verdict(0.36))[0]
