"""The promotion gate's verdicts, and the search space a spec may declare."""

from __future__ import annotations

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
