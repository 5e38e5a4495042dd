"""Shadow scores paired with the serving score and the label of the same payment, and the
verdict on the pairs (driftloop_monitor._shadow, _verdicts), on a real checkpoint."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from driftloop_monitor._checkpoint import Checkpoint
from driftloop_monitor._join import DAY, LabelJoin
from driftloop_monitor._shadow import ShadowJoin
from driftloop_monitor._verdicts import judge_due, judge_rows
from pydantic import ValidationError

from driftloop.drift import MonitorPolicy, load_policy
from driftloop.events import DriftEvent

ROOT = Path(__file__).resolve().parents[2]
T0 = 1_800_000_000.0
HOUR = 3600.0


def _policy(**shadow: object) -> MonitorPolicy:
    return MonitorPolicy.model_validate(
        {"model": "fraud", "performance": {"labels": 100_000, "horizon_days": 2},
         "shadow": {"min_rows": 400, "min_positives": 20, "step": 100, **shadow}}
    )  # fmt: skip


class _Monitor:
    """The service's calls of the label join and the shadow pairing, one transaction per
    record as the service's batches make them."""

    def __init__(self, path, policy: MonitorPolicy) -> None:
        self.checkpoint = Checkpoint(path)
        self.join = LabelJoin(self.checkpoint, policy.performance)
        self.shadows = ShadowJoin(self.checkpoint, policy.shadow, policy.performance)
        self.join.on_join.append(self.shadows.served)
        self.policy = policy

    def serving(self, tid: str, t: float, score: float, version: str = "v1") -> None:
        with self.checkpoint.transaction():
            self.join.prediction(tid, version, t, score, score >= 0.5)
            self.shadows.serving(tid, version, score, score >= 0.5)

    def shadow(self, tid: str, t: float, score: float, version: str = "v2") -> None:
        with self.checkpoint.transaction():
            self.shadows.shadow(tid, version, t, score, score >= 0.5)

    def label(self, tid: str, y: bool) -> None:
        with self.checkpoint.transaction():
            self.join.label(tid, y, T0 + HOUR)
            self.shadows.label(tid, y)

    def paired(self) -> list[tuple[object, ...]]:
        return self.checkpoint.db.execute(
            "SELECT transaction_id, serving_version, version, serving_score, score, is_fraud"
            " FROM shadow_paired ORDER BY transaction_id"
        ).fetchall()


ORDERS = list(itertools.permutations(["serving", "shadow", "label"]))


@pytest.mark.parametrize("order", ORDERS, ids=["-".join(o) for o in ORDERS])
def test_a_payment_pairs_once_whatever_order_its_parts_arrive_in(tmp_path, order):
    m = _Monitor(tmp_path / "c.sqlite", _policy())
    steps = {
        "serving": lambda: m.serving("t1", T0, 0.2),
        "shadow": lambda: m.shadow("t1", T0, 0.9),
        "label": lambda: m.label("t1", True),
    }
    for part in order:
        steps[part]()
    assert m.paired() == [("t1", "v1", "v2", 0.2, 0.9, 1)]
    # every part read again (a producer's retry, a replayed batch): still one pair
    for part in order:
        steps[part]()
    assert m.paired() == [("t1", "v1", "v2", 0.2, 0.9, 1)]
    assert m.shadows.pending() == 0
    (pair,) = m.shadows.pairs()
    assert (pair.serving, pair.challenger, pair.first_seen, pair.since_eval) == ("v1", "v2", T0, 1)


def test_pending_parts_survive_a_restart_and_what_cannot_pair_is_counted(tmp_path):
    path = tmp_path / "c.sqlite"
    m = _Monitor(path, _policy())
    m.shadow("t1", T0, 0.9)
    m.serving("t1", T0, 0.1)
    m.shadow("t2", T0, 0.8)  # never served, never labelled
    m.checkpoint.db.close()
    again = _Monitor(path, _policy())  # a restart: a new process on the same file
    again.label("t1", False)
    assert again.paired() == [("t1", "v1", "v2", 0.1, 0.9, 0)]
    assert again.shadows.pending() == 1
    with again.checkpoint.transaction():  # labels newer than t2's horizon (2 days) arrived
        again.shadows.prune(T0 + 3 * DAY, T0 + 3 * DAY)
    assert again.shadows.pending() == 0 and again.shadows.counts.expired == 1


def test_a_rolled_back_batch_pairs_nothing(tmp_path):
    m = _Monitor(tmp_path / "c.sqlite", _policy())
    m.serving("t1", T0, 0.2)
    m.label("t1", True)
    with pytest.raises(RuntimeError), m.checkpoint.transaction():
        m.shadows.shadow("t1", "v2", T0, 0.9, True)
        raise RuntimeError("the process died before the commit")
    assert m.paired() == []
    m.shadow("t1", T0, 0.9)  # the batch replayed
    assert len(m.paired()) == 1


def _rows(n: int, shadow_quality: float, serving_quality: float, seed: int = 0):
    """Paired rows: each version's score separates the frauds by its quality."""
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.06
    serve = np.clip(rng.normal(0.3 + serving_quality * y, 0.2), 0, 1)
    shade = np.clip(rng.normal(0.3 + shadow_quality * y, 0.2), 0, 1)
    return [
        (T0 + i, float(a), int(a >= 0.5), float(b), int(b >= 0.5), int(v))
        for i, (a, b, v) in enumerate(zip(serve, shade, y, strict=True))
    ]


def test_a_clearly_better_shadow_is_better_and_a_clearly_worse_one_worse():
    policy = _policy()
    better = judge_rows(policy, _rows(2000, shadow_quality=0.6, serving_quality=0.05))
    assert better.verdict == "better", better
    assert {c.metric for c in better.comparisons} == {"pr_auc", "roc_auc"}
    assert all(c.challenger > c.serving and c.p_better < 0.01 for c in better.comparisons)
    assert better.rows == 2000 and better.positives == int(better.serving["positives"]) > 20
    worse = judge_rows(policy, _rows(2000, shadow_quality=0.05, serving_quality=0.6))
    assert worse.verdict == "worse" and all(c.p_worse < 0.01 for c in worse.comparisons)


def test_no_verdict_below_the_minimums_or_without_a_significant_difference():
    policy = _policy()
    few = judge_rows(policy, _rows(300, shadow_quality=0.9, serving_quality=0.0))
    assert few.verdict == "unknown" and few.comparisons == [] and "300/400" in few.reason
    rare = judge_rows(_policy(min_positives=500), _rows(2000, 0.9, 0.0))
    assert rare.verdict == "unknown" and "positives" in rare.reason
    same = judge_rows(policy, _rows(2000, shadow_quality=0.4, serving_quality=0.4))
    assert same.verdict == "unknown" and same.comparisons  # compared, not different
    # a real but small gain does not pass min_difference
    assert judge_rows(_policy(min_difference={"roc_auc": 0.5}), _rows(2000, 0.6, 0.05)).verdict == (
        "unknown"
    )


def _feed(m: _Monitor, rows) -> None:
    with m.checkpoint.transaction():
        for i, (t, a, _, b, _, y) in enumerate(rows):
            m.join.prediction(f"t{i}", "v1", t, a, a >= 0.5)
            m.shadows.serving(f"t{i}", "v1", a, a >= 0.5)
            m.shadows.shadow(f"t{i}", "v2", t, b, b >= 0.5)
            m.join.label(f"t{i}", bool(y), t + 60)
            m.shadows.label(f"t{i}", bool(y))


def test_a_verdict_is_one_event_whose_id_a_replay_repeats(tmp_path):
    policy = _policy()
    rows = _rows(1000, shadow_quality=0.6, serving_quality=0.05)
    m = _Monitor(tmp_path / "a.sqlite", policy)
    _feed(m, rows)
    with m.checkpoint.transaction():
        (judged,) = judge_due(policy, m.shadows, T0)
        assert judge_due(policy, m.shadows, T0) == []  # closed: judged no more
    _, _, event = judged
    assert event is not None and event.kind == "shadow_verdict" and event.schema_version == 3
    assert event.model_version == "v1" and event.shadow is not None
    assert (event.shadow.version, event.shadow.verdict, event.shadow.action) == (
        "v2", "better", "promote")  # fmt: skip
    assert event.shadow.rows == 1000 and event.window.row_count == 1000
    assert event.metrics["p_better_pr_auc"] < 0.01
    again = DriftEvent.model_validate_json(event.to_bytes())
    assert again.event_id == event.event_id
    # the same records read by another monitor, in batches of another size, judged later
    other = _Monitor(tmp_path / "b.sqlite", policy)
    _feed(other, rows[:600])
    _feed(other, rows[600:])
    with other.checkpoint.transaction():
        ((_, _, replayed),) = judge_due(policy, other.shadows, T0)
    assert replayed is not None and replayed.event_id == event.event_id


def test_past_the_deadline_an_unknown_verdict_is_said_once_with_the_policys_action(tmp_path):
    policy = _policy(deadline_hours=24)
    m = _Monitor(tmp_path / "c.sqlite", policy)
    _feed(m, _rows(300, shadow_quality=0.4, serving_quality=0.4))  # too few to judge
    with m.checkpoint.transaction():
        ((_, judged, event),) = judge_due(policy, m.shadows, T0 + 23 * HOUR)
    assert judged.verdict == "unknown" and event is None  # a judgement, no event yet
    with m.checkpoint.transaction():
        assert judge_due(policy, m.shadows, T0 + 23 * HOUR) == []  # nothing new: not due
        ((_, judged, event),) = judge_due(policy, m.shadows, T0 + 25 * HOUR)
    assert event is not None and event.shadow is not None
    assert (event.shadow.verdict, event.shadow.action) == ("unknown", "remove")
    with m.checkpoint.transaction():
        assert judge_due(policy, m.shadows, T0 + 48 * HOUR) == []  # said once, pair closed
    keep = _policy(deadline_hours=24, on_deadline="keep")
    k = _Monitor(tmp_path / "k.sqlite", keep)
    _feed(k, _rows(300, 0.4, 0.4))
    with k.checkpoint.transaction():
        ((_, _, kept),) = judge_due(keep, k.shadows, T0 + 25 * HOUR)
        assert kept is not None and kept.shadow is not None and kept.shadow.action == "keep"
        assert judge_due(keep, k.shadows, T0 + 48 * HOUR) == []  # the deadline said once
    _feed(k, [(T0 + 10 * HOUR + i, *r[1:]) for i, r in enumerate(_rows(1000, 0.6, 0.05, 1))])
    with k.checkpoint.transaction():  # kept, and still judged: a later verdict is its own
        ((_, _, later),) = judge_due(keep, k.shadows, T0 + 49 * HOUR)
    assert later is not None and later.shadow is not None and later.shadow.verdict == "better"


def test_the_shipped_policy_has_a_shadow_section_and_refuses_unknown_keys():
    shipped = load_policy(ROOT / "deploy" / "apps" / "fraud" / "monitor.yaml")
    assert shipped.shadow.enabled and shipped.shadow.on_deadline == "remove"
    assert (shipped.shadow.min_rows, shipped.shadow.min_positives) == (3000, 40)
    raw = shipped.model_dump()
    raw["shadow"]["min_labels"] = 10
    with pytest.raises(ValidationError, match="min_labels"):
        MonitorPolicy.model_validate(raw)
    with pytest.raises(ValidationError, match="no metric"):
        _policy(min_difference={})
