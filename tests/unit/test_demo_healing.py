"""The demo's healing verdict: v2 after the drift against v1 before it — its holdout, and
its own live figures on the traffic before the drift (served features, logged scores)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from driftloop_demo._evidence import Comparison, healing, live_figures
from sklearn.metrics import average_precision_score  # type: ignore[import-untyped]

ONSET = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def _frame() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    n = 400
    fraud = rng.random(n) < 0.1
    score = np.clip(rng.normal(0.2, 0.15, n) + 0.5 * fraud, 0, 1)
    return pd.DataFrame(
        {
            "model_version": ["v1"] * 300 + ["v2"] * 100,
            "scored_at": [ONSET + timedelta(minutes=i - 200) for i in range(n)],
            "is_fraud": pd.array([*fraud[:390], *[None] * 10], dtype="boolean"),
            "score": score,
            "decision": score >= 0.5,
        }
    )


def test_live_figures_are_the_versions_own_labelled_rows_before_the_time():
    frame = _frame()
    live = live_figures(frame, "v1", ONSET)
    assert live is not None
    rows = frame.iloc[:200]  # v1's rows scored before the onset, all labelled
    y = rows["is_fraud"].astype(bool).to_numpy()
    assert live.rows == 200 and live.positives == int(y.sum())
    assert live.pr_auc == pytest.approx(average_precision_score(y, rows["score"]))
    assert live.recall == pytest.approx(rows["decision"].to_numpy()[y].mean())
    assert live_figures(frame, "v2", ONSET) is None  # v2 scored nothing before the onset


def test_the_verdict_is_against_the_holdout_and_the_line_also_against_live():
    comparison = Comparison(ONSET, 100, 20, {"v2": 0.76}, {}, {"v2": 0.5}, {})
    live = live_figures(_frame(), "v1", ONSET)
    assert live is not None
    healed = healing({"pr_auc": 0.9, "recall_at_threshold": 0.8}, comparison, 2, 0, live)
    assert not healed.healed  # 0.76 / 0.9 < 0.85: the goal is against the holdout
    line = healed.line()
    assert "NOT healed" in line and f"PR-AUC {live.pr_auc:.3f}" in line
    assert f"{0.76 / live.pr_auc:.0%} and {0.5 / live.recall:.0%}" in line
    assert "v1 live" not in healing({"pr_auc": 0.9}, comparison, 0, 0).line()
