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
    adjust,
    chi_square,
    compare,
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


def test_a_large_window_flags_a_tiny_shift_by_p_value_but_not_by_effect():
    win, ref = _views(0.06, n=20_000, seed=3)
    (test,) = compare({"x": ("ks", win.get_column("x"), ref.get_column("x"))}, DriftSpec())
    assert test.p_adjusted is not None and test.p_adjusted < 0.01
    assert test.category == "POSSIBLE_DRIFT"


def test_hellinger_has_no_p_value_and_judges_by_distance():
    win, ref = _views(1.0)
    (test,) = compare({"x": ("hellinger", win.get_column("x"), ref.get_column("x"))}, DriftSpec())
    assert test.p_value is None and test.category == "DRIFT" and 0 < test.statistic <= 1
