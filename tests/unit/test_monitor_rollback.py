"""A promoted version judged against the last live figures of the version it replaced
(driftloop_monitor._rollback), on a real checkpoint fed by the real label join; and the
trigger's decision on the events of a version rolled back."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from driftloop_monitor._checkpoint import Checkpoint
from driftloop_monitor._join import LabelJoin
from driftloop_monitor._rollback import Rollbacks, Watched
from driftloop_trigger import ModelHistory, TriggerPolicy, decide
from pydantic import ValidationError

from driftloop.drift import MonitorPolicy, load_policy
from driftloop.events import DriftEvent

ROOT = Path(__file__).resolve().parents[2]
T0 = 1_800_000_000.0
EVAL = 500  # labelled rows per evaluation


def _policy(**rollback: object) -> MonitorPolicy:
    return MonitorPolicy.model_validate(
        {"model": "fraud", "performance": {"labels": EVAL, "step": EVAL, "horizon_days": 2},
         "rollback": {"min_rows": 400, "min_positives": 10, "evaluations": 3, **rollback}}
    )  # fmt: skip


class _Monitor:
    """The service's calls for a version's labelled evaluations: each prediction and its
    label in one transaction, an evaluation due handed to the rollback check."""

    def __init__(self, path: Path, policy: MonitorPolicy) -> None:
        self.checkpoint = Checkpoint(path)
        self.join = LabelJoin(self.checkpoint, policy.performance)
        self.rollbacks = Rollbacks(self.checkpoint, policy)
        self.events: list[DriftEvent] = []
        self.watched: list[Watched] = []
        self.t = T0

    def traffic(self, version: str, n: int, strong: bool, seed: int, batch: int = 1) -> None:
        """``n`` labelled payments scored by ``version``: well (strong) or barely."""
        rng = np.random.default_rng(seed)
        y = rng.random(n) < 0.06
        scores = np.clip(rng.normal(0.3 + (0.6 if strong else 0.03) * y, 0.2), 0, 1)
        for start in range(0, n, batch):
            with self.checkpoint.transaction():
                for i in range(start, min(n, start + batch)):
                    tid, self.t = f"{version}-{seed}-{i}", self.t + 10
                    self.join.prediction(tid, version, self.t, float(scores[i]), scores[i] > 0.5)
                    joined = self.join.label(tid, bool(y[i]), self.t + 3600)
                    if joined is not None:
                        rows = self.join.due(joined)
                        if rows is not None:
                            self._evaluated(joined, rows)

    def _evaluated(self, version: str, rows: list[tuple[float, float, int, int]]) -> None:
        watched = self.rollbacks.evaluated(version, rows)
        if watched is not None:
            self.watched.append(watched)
            if watched.event is not None:
                self.events.append(watched.event)

    def watch(self, version: str) -> tuple[object, ...] | None:
        row = self.checkpoint.db.execute(
            "SELECT previous, evaluations, closed FROM rollback_watch WHERE version = ?",
            (version,),
        ).fetchone()
        return None if row is None else tuple(row)


def test_a_clearly_worse_promotion_is_a_rollback_event_on_its_first_evaluation(tmp_path):
    m = _Monitor(tmp_path / "c.sqlite", _policy())
    m.traffic("v1", 2 * EVAL, strong=True, seed=1)
    assert m.events == [] and m.watch("v1") is None  # the first version: nothing to compare
    m.traffic("v2", EVAL, strong=False, seed=2)
    (event,) = m.events
    assert event.kind == "rollback" and event.schema_version == 4
    assert event.model_version == "v2" and event.regression is not None
    r = event.regression
    assert (r.previous_version, r.evaluation, r.rows) == ("v1", 1, EVAL)
    assert r.positives >= 10 and r.previous_positives >= 10
    assert {c.metric for c in r.comparisons} == {"pr_auc", "roc_auc"}
    assert all(c.current < c.previous - c.min_difference for c in r.comparisons)
    assert all(c.p_worse < 0.01 for c in r.comparisons)
    # the previous figures pool v1's last evaluations (both of its two here)
    assert r.previous_rows == 2 * EVAL and r.previous_window.row_count == 2 * EVAL
    assert r.previous_window.start.timestamp() == T0 + 10
    assert m.watch("v2") == ("v1", 1, "regressed")
    # said once: more evaluations of v2 judge nothing
    m.traffic("v2", 2 * EVAL, strong=False, seed=3)
    assert len(m.events) == 1


def test_a_promotion_as_good_as_before_is_not_rolled_back_and_the_watch_ends(tmp_path):
    m = _Monitor(tmp_path / "c.sqlite", _policy())
    m.traffic("v1", EVAL, strong=True, seed=1)
    m.traffic("v2", 3 * EVAL, strong=True, seed=2)
    assert m.events == []
    assert [w.verdict for w in m.watched] == ["not_worse"] * 3
    assert [w.armed for w in m.watched] == [True, True, False]
    assert m.watch("v2") == ("v1", 3, "cleared")
    # past the watch, a worse evaluation is for the performance check, not a rollback
    m.traffic("v2", EVAL, strong=False, seed=4)
    assert m.events == []


def test_no_rollback_on_too_few_positives_or_a_drop_below_min_difference(tmp_path):
    few = _Monitor(tmp_path / "few.sqlite", _policy(min_positives=200))
    few.traffic("v1", EVAL, strong=True, seed=1)
    few.traffic("v2", EVAL, strong=False, seed=2)
    assert few.events == [] and [w.verdict for w in few.watched] == ["too_few"]
    wide = _Monitor(tmp_path / "wide.sqlite", _policy(min_difference={"pr_auc": 0.99}))
    wide.traffic("v1", EVAL, strong=True, seed=1)
    wide.traffic("v2", EVAL, strong=False, seed=2)
    assert wide.events == [] and [w.verdict for w in wide.watched] == ["not_worse"]
    off = _Monitor(tmp_path / "off.sqlite", _policy(enabled=False))
    off.traffic("v1", EVAL, strong=True, seed=1)
    off.traffic("v2", EVAL, strong=False, seed=2)
    assert off.events == []


def test_the_same_regression_is_the_same_event_whatever_the_batching_and_after_a_restart(
    tmp_path,
):
    one = _Monitor(tmp_path / "one.sqlite", _policy())
    one.traffic("v1", EVAL, strong=True, seed=1)
    one.traffic("v2", EVAL, strong=False, seed=2)
    other = _Monitor(tmp_path / "other.sqlite", _policy())
    other.traffic("v1", EVAL, strong=True, seed=1, batch=97)
    other.checkpoint.db.close()
    reopened = _Monitor(tmp_path / "other.sqlite", _policy())  # the figures survive
    reopened.t = other.t
    reopened.traffic("v2", EVAL, strong=False, seed=2, batch=64)
    assert [e.event_id for e in reopened.events] == [e.event_id for e in one.events]
    assert len(one.events) == 1


def test_a_rolled_back_batch_leaves_no_figures_and_no_watch(tmp_path):
    m = _Monitor(tmp_path / "c.sqlite", _policy())
    m.traffic("v1", EVAL, strong=True, seed=1)
    with pytest.raises(RuntimeError), m.checkpoint.transaction():
        rows = [(T0 + i, 0.3, 0, int(i % 10 == 0)) for i in range(EVAL)]
        m.rollbacks.evaluated("v2", rows)
        raise RuntimeError("the batch fails before its offsets are saved")
    assert m.watch("v2") is None and m.rollbacks.figures("v2") is None
    m.traffic("v2", EVAL, strong=False, seed=2)
    assert len(m.events) == 1 and m.events[0].regression is not None
    assert m.events[0].regression.evaluation == 1


def test_the_shipped_policy_watches_six_evaluations_and_refuses_unknown_keys():
    policy = load_policy(ROOT / "deploy" / "apps" / "fraud" / "monitor.yaml")
    r = policy.rollback
    assert r.enabled and r.evaluations == 6 and r.alpha == 0.01
    assert dict(r.min_difference) == {"pr_auc": 0.05, "roc_auc": 0.03}
    with pytest.raises(ValidationError, match="armed"):
        MonitorPolicy.model_validate({"model": "fraud", "rollback": {"armed": 3}})
    with pytest.raises(ValidationError, match="no metric"):
        MonitorPolicy.model_validate({"model": "fraud", "rollback": {"min_difference": {}}})


def _rollback_event(tmp_path: Path) -> DriftEvent:
    m = _Monitor(tmp_path / "c.sqlite", _policy())
    m.traffic("v1", EVAL, strong=True, seed=1)
    m.traffic("v2", EVAL, strong=False, seed=2)
    (event,) = m.events
    return event


def test_the_rollback_contract_is_version_4_with_an_id_from_both_versions(tmp_path):
    event = _rollback_event(tmp_path)
    again = DriftEvent.model_validate_json(event.to_bytes())
    assert again == event and again.schema_version == 4
    later = event.model_copy(update={"metrics": {}}).model_dump(mode="json")
    later["window"]["end"] = (event.window.end + timedelta(hours=1)).isoformat()
    assert DriftEvent.model_validate(later).event_id == event.event_id
    data = event.model_dump(mode="json")
    with pytest.raises(ValidationError, match="schema_version 4"):
        DriftEvent.model_validate({**data, "schema_version": 2})
    data.pop("event_id")  # derived anew: the contract's own checks speak
    with pytest.raises(ValidationError, match="only it"):
        DriftEvent.model_validate({**data, "regression": None})
    with pytest.raises(ValidationError, match="only it"):
        DriftEvent.model_validate({**data, "kind": "performance_degraded", "schema_version": 2})


def test_the_trigger_starts_no_run_for_a_rolled_back_version_nor_during_the_cooldown(tmp_path):
    degraded = _rollback_event(tmp_path).model_dump(mode="json")
    degraded.update(kind="performance_degraded", schema_version=2, regression=None,
                    event_id=None, metrics={"drop_roc_auc": 0.2})  # fmt: skip
    event = DriftEvent.model_validate({k: v for k, v in degraded.items() if v is not None})
    policy = TriggerPolicy.model_validate({"model": "fraud"})
    now = datetime(2027, 1, 1, tzinfo=UTC)
    free = decide(event, policy, ModelHistory(), now)
    assert free.outcome == "submit", free
    bad = decide(event, policy, ModelHistory(rolled_back=frozenset({"v2"})), now)
    assert (bad.outcome, bad.reason) == ("skip", "rolled_back_version")
    other = event.model_copy(update={"model_version": "v1"})
    recent = ModelHistory(last_rollback=now - timedelta(hours=5))
    cooling = decide(other, policy, recent, now)
    assert (cooling.outcome, cooling.reason) == ("skip", "rollback_cooldown")
    past = ModelHistory(last_rollback=now - timedelta(hours=7))
    assert decide(other, policy, past, now).outcome == "submit"


def test_each_side_is_judged_on_its_pool_of_the_last_evaluations(tmp_path):
    """The version before is judged on its last ``evaluations`` evaluations pooled, the
    promoted one on all of its evaluations so far: one evaluation alone varies too much."""
    m = _Monitor(tmp_path / "c.sqlite", _policy(evaluations=3))
    m.traffic("v1", 5 * EVAL, strong=True, seed=1)
    m.traffic("v2", 3 * EVAL, strong=True, seed=2)
    pools = [(w.evaluation, w.verdict) for w in m.watched if w.version == "v2"]
    assert pools == [(1, "not_worse"), (2, "not_worse"), (3, "not_worse")], pools
    rows = m.checkpoint.db.execute(
        "SELECT version, count(*), count(DISTINCT evaluation) FROM live_rows GROUP BY version"
        " ORDER BY version"
    ).fetchall()
    assert rows == [("v1", 3 * EVAL, 3), ("v2", 3 * EVAL, 3)], rows  # v1: its last 3 of 5
    previous = m.checkpoint.db.execute(
        "SELECT previous_metrics, previous_start FROM rollback_watch WHERE version = 'v2'"
    ).fetchone()
    assert json.loads(previous[0])["rows"] == 3 * EVAL
    assert previous[1] == T0 + 10 * (2 * EVAL + 1)  # v1's third evaluation's first row
    m.traffic("v3", EVAL, strong=True, seed=3)  # only the two newest versions keep a pool
    kept = {v for (v,) in m.checkpoint.db.execute("SELECT DISTINCT version FROM live_rows")}
    assert kept == {"v2", "v3"}
