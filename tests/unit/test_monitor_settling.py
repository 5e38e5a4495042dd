"""After a change, a column that aggregates over a horizon settles, then is rebased on the
version's own first settled window (driftloop_monitor._settle), on a real checkpoint."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from driftloop_monitor._checkpoint import Checkpoint
from driftloop_monitor._frame import Row
from driftloop_monitor._judge import Judged, judge_drift
from driftloop_monitor._references import Reference
from driftloop_monitor._settle import Settling, window_label
from driftloop_monitor._windows import ClosedWindow

from driftloop.drift import MonitorPolicy
from driftloop.profiles import SCORE_COLUMN, profile_frame

HOUR = 3600.0
CHANGE = 1_800_000_000.0
POLICY = MonitorPolicy.model_validate(
    {
        "model": "fraud",
        "window": {"rows": 1000, "min_rows": 100},
        "drift": {"score": False, "consecutive_windows": 2, "settle_hours": {"*_24h": 24}},
    }
)


def _utc(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def _reference(change_point: float | None) -> Reference:
    """Trained in the new regime's first hours: ``max_24h`` still held the old regime."""
    rng = np.random.default_rng(0)
    features = profile_frame(
        pd.DataFrame({"max_24h": rng.normal(3.0, 1.0, 4000), "amount": rng.normal(0, 1, 4000)})
    )
    scores = profile_frame(pd.DataFrame({SCORE_COLUMN: rng.uniform(0.0, 1.0, 4000)}))
    return Reference(
        "v2", features, scores, ["max_24h", "amount"], {}, {}, "models:/fraud/v2/reference",
        "models:/fraud/v2/metadata.json",
        change_point=_utc(change_point) if change_point is not None else None,
    )  # fmt: skip


def _window(hours_after: float, max_24h: float, amount: float = 0.0, seed: int = 0):
    rng = np.random.default_rng(seed)
    start = CHANGE + hours_after * HOUR
    a, b = rng.normal(max_24h, 1.0, 1000), rng.normal(amount, 1.0, 1000)
    rows = [
        Row(i, start + i, 0.5, {"max_24h": float(a[i]), "amount": float(b[i])}) for i in range(1000)
    ]
    return ClosedWindow("v2", _utc(start), _utc(start + 999), rows)


class _Monitor:
    """The service's ``_close`` steps: bases, judge, streak, adoption, in one transaction."""

    def __init__(self, path: Path, ref: Reference) -> None:
        self.checkpoint = Checkpoint(path)
        self.settling = Settling(POLICY.drift, self.checkpoint)
        self.ref = ref

    def close(self, window: ClosedWindow) -> Judged:
        with self.checkpoint.transaction():
            before, _ = self.checkpoint.streak(window.version, "data")
            bases = self.settling.bases(self.ref, window.start)
            judged, streak = judge_drift(POLICY, window, self.ref, before, bases)
            self.checkpoint.set_streak(window.version, "data", streak)
            if judged.tests:
                label = window_label(window.start, window.end)
                self.settling.adopt(window.version, bases, label, judged.profile)
            return judged


def _column(judged: Judged, name: str):
    return next(c for c in judged.record.columns if c.column == name)


def test_a_horizon_column_settles_then_is_judged_against_the_version_s_own_traffic(tmp_path):
    monitor = _Monitor(tmp_path / "c.sqlite", _reference(CHANGE))
    moving = monitor.close(_window(6, 1.5, seed=1))  # the 24 h maxima still lose the old regime
    assert _column(moving, "max_24h").category == "DRIFT"  # tested and recorded
    assert _column(moving, "max_24h").basis == "settling"
    assert moving.record.verdict == "no_drift" and moving.record.metrics["settling_columns"] == 1

    other = monitor.close(_window(12, 1.5, amount=1.0, seed=2))  # no horizon: counted at once
    assert other.record.verdict == "drift" and _column(other, "amount").basis is None
    assert other.record.metrics["drifted_columns"] == 1

    first = monitor.close(_window(25, 0.0, seed=3))  # the horizon holds only the new regime
    assert _column(first, "max_24h").basis == "adopted" and first.record.verdict == "no_drift"
    adopted = window_label(first.record.start, first.record.end)
    assert monitor.checkpoint.rebased("v2") == {"max_24h": adopted}

    monitor.checkpoint.db.close()  # the basis survives a restart
    monitor = _Monitor(tmp_path / "c.sqlite", _reference(CHANGE))
    calm = monitor.close(_window(28, 0.0, seed=4))
    column = _column(calm, "max_24h")
    assert calm.record.verdict == "no_drift" and column.basis == f"window {adopted}"
    assert column.reference["mean"] == pytest.approx(0.0, abs=0.1)  # the window's, not 3.0

    again = [monitor.close(_window(h, 1.0, seed=5 + h)) for h in (31, 34)]  # a new change
    assert [j.record.verdict for j in again] == ["drift", "drift"]
    assert again[1].event is not None
    assert [c.column for c in again[1].event.columns] == ["max_24h", "amount"]


def test_without_a_change_point_or_a_horizon_every_column_counts(tmp_path):
    monitor = _Monitor(tmp_path / "c.sqlite", _reference(None))
    judged = monitor.close(_window(6, 1.5, seed=1))
    assert judged.record.verdict == "drift" and _column(judged, "max_24h").basis is None
    assert POLICY.drift.horizon_s("amount") is None
    assert POLICY.drift.horizon_s("max_24h") == 24 * HOUR
