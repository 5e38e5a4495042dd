"""A canary's labelled answers beside the serving version's labelled payments of the same
period, and the verdict on them (driftloop_monitor._canary, _verdicts), on a real
checkpoint."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from driftloop_monitor._canary import CanaryJoin
from driftloop_monitor._checkpoint import Checkpoint
from driftloop_monitor._join import DAY, LabelJoin
from driftloop_monitor._verdicts import judge_due
from pydantic import ValidationError

from driftloop.drift import MonitorPolicy, load_policy
from driftloop.events import DriftEvent

ROOT = Path(__file__).resolve().parents[2]
T0 = 1_800_000_000.0
HOUR = 3600.0


def _policy(**canary: object) -> MonitorPolicy:
    return MonitorPolicy.model_validate(
        {"model": "fraud", "performance": {"labels": 100_000, "horizon_days": 2},
         "canary": {"min_rows": 300, "min_positives": 15, "step": 100, **canary}}
    )  # fmt: skip


class _Monitor:
    """The service's calls of the label join and the canary join, one transaction per
    record as the service's batches make them."""

    def __init__(self, path: Path, policy: MonitorPolicy) -> None:
        self.checkpoint = Checkpoint(path)
        self.join = LabelJoin(self.checkpoint, policy.performance)
        self.canaries = CanaryJoin(self.checkpoint, policy.canary, policy.performance)
        self.join.on_join.append(self.canaries.served)

    def serving(self, tid: str, t: float, score: float, version: str = "v1") -> None:
        with self.checkpoint.transaction():
            self.canaries.serving(version, t)
            self.join.prediction(tid, version, t, score, score >= 0.5)

    def canary(self, tid: str, t: float, score: float, version: str = "v2") -> None:
        with self.checkpoint.transaction():
            self.canaries.canary(tid, version, t, score, score >= 0.5)

    def label(self, tid: str, y: bool, t: float = T0 + HOUR) -> None:
        with self.checkpoint.transaction():
            self.join.label(tid, y, t)
            self.canaries.label(tid, y, t)

    def labelled(self) -> list[tuple[object, ...]]:
        return self.checkpoint.db.execute(
            "SELECT transaction_id, role, serving_version, version, score, is_fraud"
            " FROM canary_labelled ORDER BY role, transaction_id"
        ).fetchall()


def test_each_side_is_labelled_once_whatever_order_and_however_often_it_is_read(tmp_path):
    m = _Monitor(tmp_path / "a.sqlite", _policy())
    m.serving("s0", T0 - 10, 0.2)  # before the canary's first answer: not its period
    m.label("s0", False)
    m.serving("s1", T0 + 1, 0.3)
    m.canary("c1", T0 + 1, 0.9)  # beside v1, the version waiting for labels
    m.label("c2", True)  # the label first
    m.canary("c2", T0 + 2, 0.8)
    m.label("c1", True)
    m.serving("s2", T0 + 3, 0.1)
    m.label("s1", False)
    m.label("s2", True)
    for _ in range(2):  # every record read again
        m.canary("c1", T0 + 1, 0.9)
        m.canary("c2", T0 + 2, 0.8)
        m.label("c1", True)
    assert m.labelled() == [
        ("c1", "canary", "v1", "v2", 0.9, 1), ("c2", "canary", "v1", "v2", 0.8, 1),
        ("s1", "serving", "v1", "v2", 0.3, 0), ("s2", "serving", "v1", "v2", 0.1, 1),
    ]  # fmt: skip
    (pair,) = m.canaries.pairs()
    assert (pair.serving, pair.challenger, pair.first_seen) == ("v1", "v2", T0 + 1)
    assert pair.since_eval == 4
    # a canary's label is its own: not left as an orphan of the label join
    assert m.checkpoint.db.execute("SELECT count(*) FROM orphans").fetchone() == (0,)


def test_an_answer_read_before_any_serving_prediction_or_after_every_label_is_labelled(tmp_path):
    m = _Monitor(tmp_path / "a2.sqlite", _policy())
    m.label("c1", True)  # a backlog: labels read first, no serving prediction yet
    m.canary("c1", T0 + 1, 0.9)
    assert m.labelled() == [] and m.canaries.pending() == 1  # beside what? not known yet
    m.label("s1", False)
    m.serving("s1", T0 + 2, 0.3)  # joined at once: nothing waits in the label join
    m.label("c2", False)
    m.canary("c2", T0 + 3, 0.2)
    assert [(r[0], r[1], r[2]) for r in m.labelled()] == [
        ("c1", "canary", "v1"), ("c2", "canary", "v1"), ("s1", "serving", "v1")
    ]  # fmt: skip
    assert m.canaries.pending() == 0


def test_pending_answers_survive_a_restart_and_what_gets_no_label_is_counted(tmp_path):
    policy = _policy()
    m = _Monitor(tmp_path / "b.sqlite", policy)
    m.serving("s1", T0, 0.3)
    m.canary("c1", T0 + 1, 0.9)
    m.canary("c2", T0 + 2, 0.8)  # never labelled
    again = _Monitor(tmp_path / "b.sqlite", policy)  # a restart
    again.label("c1", True)
    assert [r[0] for r in again.labelled()] == ["c1"]
    with again.checkpoint.transaction():
        again.canaries.prune(T0 + 3 * DAY)
    assert again.canaries.pending() == 0 and again.canaries.counts.expired == 1


def test_a_rolled_back_batch_labels_nothing(tmp_path):
    m = _Monitor(tmp_path / "c.sqlite", _policy())
    m.serving("s1", T0, 0.3)
    with pytest.raises(RuntimeError), m.checkpoint.transaction():
        m.canaries.canary("c1", "v2", T0 + 1, 0.9, True)
        m.canaries.label("c1", True, T0 + HOUR)
        raise RuntimeError("crash before the commit")
    assert m.labelled() == [] and m.canaries.pairs() == []
    m.canary("c1", T0 + 1, 0.9)  # the batch replayed
    m.label("c1", True)
    assert len(m.labelled()) == 1


def _traffic(n: int, canary_quality: float, serving_quality: float, fraction: float, seed: int = 0):
    """(transaction id, event time, is the canary's, score, is_fraud): each version's score
    separates the frauds by its quality; ``fraction`` of the payments are the canary's."""
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.06
    canary = rng.random(n) < fraction
    quality = np.where(canary, canary_quality, serving_quality)
    scores = np.clip(rng.normal(0.3 + quality * y, 0.2), 0, 1)
    return [
        (f"t{seed}-{i}", T0 + 10 + i, bool(c), float(s), bool(v))
        for i, (c, s, v) in enumerate(zip(canary, scores, y, strict=True))
    ]


def _feed(m: _Monitor, traffic) -> None:
    """The service's order: a batch of predictions, then a batch of their labels."""
    with m.checkpoint.transaction():
        for tid, t, is_canary, score, _ in traffic:
            if is_canary:
                m.canaries.canary(tid, "v2", t, score, score >= 0.5)
            else:
                m.canaries.serving("v1", t)
                m.join.prediction(tid, "v1", t, score, score >= 0.5)
    with m.checkpoint.transaction():
        for tid, t, _, _, y in traffic:
            m.join.label(tid, y, t + HOUR)
            m.canaries.label(tid, y, t + HOUR)


def test_a_clearly_better_canary_is_one_promotion_event_whose_id_a_replay_repeats(tmp_path):
    policy = _policy()
    traffic = _traffic(6000, canary_quality=0.6, serving_quality=0.1, fraction=0.2)
    m = _Monitor(tmp_path / "d.sqlite", policy)
    _feed(m, traffic)
    with m.checkpoint.transaction():
        ((_, judged, event),) = judge_due(policy, m.canaries, T0)
        assert judge_due(policy, m.canaries, T0) == []  # closed: judged no more
    assert judged.verdict == "better", judged
    assert event is not None and event.kind == "canary_verdict" and event.schema_version == 5
    v = event.canary
    assert v is not None and (v.version, v.verdict, v.action) == ("v2", "better", "promote")
    canary_rows = sum(1 for r in traffic if r[2])
    first = min(r[1] for r in traffic if r[2])  # the serving side: from the canary's first
    assert v.rows == canary_rows == event.window.row_count
    assert v.serving_rows == sum(1 for r in traffic if not r[2] and r[1] >= first)
    assert v.positives == sum(1 for r in traffic if r[2] and r[4]) >= 15
    assert v.serving_positives == sum(1 for r in traffic if not r[2] and r[4] and r[1] >= first)
    assert all(c.canary > c.serving and c.p_better < 0.01 for c in v.comparisons)
    assert event.metrics["p_better_pr_auc"] < 0.01 and "canary_pr_auc" in event.metrics
    assert DriftEvent.model_validate_json(event.to_bytes()).event_id == event.event_id
    # the same records read by another monitor, in other batches, judged later: one event
    other = _Monitor(tmp_path / "e.sqlite", policy)
    _feed(other, traffic[:2500])
    _feed(other, traffic[2500:])
    with other.checkpoint.transaction():
        ((_, _, replayed),) = judge_due(policy, other.canaries, T0 + HOUR)
    assert replayed is not None and replayed.event_id == event.event_id


def test_a_clearly_worse_canary_asks_for_its_removal(tmp_path):
    policy = _policy()
    m = _Monitor(tmp_path / "f.sqlite", policy)
    _feed(m, _traffic(6000, canary_quality=0.05, serving_quality=0.6, fraction=0.2, seed=1))
    with m.checkpoint.transaction():
        ((_, _, event),) = judge_due(policy, m.canaries, T0)
    assert event is not None and event.canary is not None
    assert (event.canary.verdict, event.canary.action) == ("worse", "remove")
    assert all(c.p_worse < 0.01 for c in event.canary.comparisons)


def test_no_verdict_until_each_side_has_its_minimums(tmp_path):
    policy = _policy()
    m = _Monitor(tmp_path / "g.sqlite", policy)
    # a small canary: plenty of serving rows, too few of the canary's
    _feed(m, _traffic(3000, canary_quality=0.9, serving_quality=0.0, fraction=0.05, seed=2))
    with m.checkpoint.transaction():
        ((_, judged, event),) = judge_due(policy, m.canaries, T0)
    assert judged.verdict == "unknown" and event is None and judged.comparisons == []
    assert "challenger" in judged.reason and "serving" not in judged.reason.split(";")[0]


def test_past_the_deadline_an_unknown_verdict_is_said_once_with_the_policys_action(tmp_path):
    policy = _policy(deadline_hours=24, on_deadline="promote")
    m = _Monitor(tmp_path / "h.sqlite", policy)
    _feed(m, _traffic(400, canary_quality=0.4, serving_quality=0.4, fraction=0.3, seed=3))
    with m.checkpoint.transaction():
        ((_, judged, event),) = judge_due(policy, m.canaries, T0 + 23 * HOUR)
    assert judged.verdict == "unknown" and event is None
    with m.checkpoint.transaction():
        ((_, judged, event),) = judge_due(policy, m.canaries, T0 + 25 * HOUR)
        assert judge_due(policy, m.canaries, T0 + 48 * HOUR) == []  # said once, closed
    assert event is not None and event.canary is not None
    assert (event.canary.verdict, event.canary.action) == ("unknown", "promote")


def test_the_shipped_policy_has_a_canary_section_and_refuses_unknown_keys():
    shipped = load_policy(ROOT / "deploy" / "apps" / "fraud" / "monitor.yaml")
    assert shipped.canary.enabled and shipped.canary.on_deadline == "remove"
    assert (shipped.canary.min_rows, shipped.canary.min_positives) == (3000, 40)
    raw = shipped.model_dump()
    raw["canary"]["pair_wait_s"] = 10  # the shadow's, not the canary's
    with pytest.raises(ValidationError, match="pair_wait_s"):
        MonitorPolicy.model_validate(raw)
    with pytest.raises(ValidationError, match="no metric"):
        _policy(min_difference={})
