"""Automatic rollback (issue 21 item 4), with the real parts: predictions and labels on the
real broker, the monitor and the trigger as processes, a real git repository whose
serve.yaml a promotion by hand changed.

A deliberately worse version promoted by hand is reverted by one `git revert` commit
carrying the live evidence, decided on its first labelled evaluation (500 labels) after
it began serving; the event replayed makes no second revert; the version is not promoted
again by the same evidence (git refuses it, the trigger cools down, its events start no
run); a promotion as good as the version before is not rolled back.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from driftloop_trigger import TriggerPolicy
from driftloop_trigger._rollback import act_on_rollback

from driftloop.events import DriftEvent, Label, Prediction, Regression, ShadowVerdict, Window
from driftloop.gitops import Git, PromotionRefused, declared, promote, rollback
from driftloop.models import ModelStore
from driftloop.settings import Settings
from tests.integration import monitor_support as ms
from tests.integration import trigger_support as ts
from tests.integration.conftest import _isolated

# Each monitor run takes 10-20 s and each trigger run about 5 s.
pytestmark = pytest.mark.timeout(300)

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 6, 1, tzinfo=UTC)
EVAL = 500  # labelled payments per evaluation (the monitor's performance.labels here)
SERVE = "deploy/apps/fraud/serve.yaml"


def _traffic(version: str, n: int, strong: bool, tag: str, start: datetime, seed: int):
    """``n`` payments scored by ``version`` (well, or barely better than chance), one every
    10 s of event time from ``start``, then their labels an hour later; ~6 % fraud."""
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.06
    scores = np.clip(rng.normal(0.3 + (0.6 if strong else 0.03) * y, 0.2), 0, 1)
    preds: list[Prediction | Label] = []
    labels: list[Prediction | Label] = []
    for i in range(n):
        t, tid = start + timedelta(seconds=10 * i), f"{tag}-t{i}"
        preds.append(Prediction(
            request_id=f"{tag}-r{i}", transaction_id=tid, model_name="fraud",
            model_version=version, score=float(scores[i]), decision=bool(scores[i] >= 0.5),
            threshold=0.5, latency_ms=1.0, event_time=t,
        ))  # fmt: skip
        labels.append(Label(transaction_id=tid, is_fraud=bool(y[i]),
                            event_time=t + timedelta(hours=1)))  # fmt: skip
    return [*preds, *labels]


def _kind(settings: Settings, kind: str) -> list[DriftEvent]:
    return [e for e in ms.drift_events(settings) if e.kind == kind]


class World:
    """A deploy repository serving v1, a monitor state and a trigger state of its own."""

    def __init__(self, base: Settings, root: Path, topics: Settings) -> None:
        self.root, self.topics = root, topics
        store = ModelStore(str(root / "models"))
        self.v1, self.v2, self.v3 = (ts.model_version(store, s, T0) for s in (1, 2, 3))
        self.repo = root / "repo"
        self.settings = ts.deploy_repo(base, root, self.v1)
        self.policy = root / "monitor.yaml"
        ms.policy_file(
            self.policy,
            window={"rows": 100_000, "duration_s": None, "min_rows": 100},
            performance={"labels": EVAL, "step": EVAL, "min_positives": 10},
            rollback={"min_rows": 400, "min_positives": 10, "evaluations": 3},
        )

    def monitor(self, state: str = "monitor") -> None:
        settings = self.topics.model_copy(update={"model_store_uri": str(self.root / "models")})
        ms.run_monitor(ms.monitor_env(settings, self.root / state, self.policy))

    def trigger(self) -> str:
        env = ts.environment(self.topics, self.root, self.settings.deploy_dir,
                             git_repo=str(self.repo), model_store_uri=str(self.root / "models"),
                             trigger_group=f"trigger-{self.topics.topic_prefix}")  # fmt: skip
        log = self.root / "trigger.log"
        assert ts.finish(ts.start(env, log), log) == 0, ts.tail(log)
        return ts.tail(log)

    def serving(self) -> str | None:
        return declared(Git(self.repo).show("main", SERVE) or "", "fraud")[0]

    def commits(self) -> int:
        return int(Git(self.repo).run("rev-list", "--count", "main").strip())

    def actions(self) -> list[tuple[str, str, str]]:
        with sqlite3.connect(self.root / "state" / "trigger" / "decisions.sqlite") as db:
            rows = db.execute("SELECT event_id, outcome, detail FROM shadow_actions ORDER BY seq")
            return [(str(e), str(o), str(d)) for e, o, d in rows]

    def decisions(self) -> dict[str, str]:
        return {str(d["event_id"]): str(d["reason"]) for d in ts.decisions(self.root)}

    def watch(self, version: str, state: str = "monitor") -> tuple[object, ...] | None:
        path = self.root / state / "monitor" / "fraud" / "checkpoint.sqlite"
        with sqlite3.connect(path) as db:
            row = db.execute(
                "SELECT previous, evaluations, closed FROM rollback_watch WHERE version = ?",
                (version,),
            ).fetchone()
        return None if row is None else tuple(row)


@pytest.fixture
def world(base_settings, tmp_path):
    topics = _isolated(base_settings)
    yield World(base_settings, tmp_path, next(topics))
    next(topics, None)


def _serve_v1_then_promote(world: World, version: str) -> str:
    """v1 serves 2 evaluations' worth of labelled traffic; then ``version`` is promoted by
    hand (a real promotion commit), whose sha is returned."""
    ms.send(world.topics, _traffic(world.v1, 2 * EVAL, True, "a", T0, seed=1))
    world.monitor()
    assert _kind(world.topics, "rollback") == []
    made = promote(world.settings, "fraud", version)
    assert made.changed and made.commit is not None
    return made.commit


def test_a_worse_promotion_is_reverted_once_with_the_evidence_and_not_promoted_again(world):
    promotion = _serve_v1_then_promote(world, world.v2)
    later = T0 + timedelta(seconds=10 * 2 * EVAL)
    ms.send(world.topics, _traffic(world.v2, 3 * EVAL, False, "b", later, seed=2))
    world.monitor()
    (event,) = _kind(world.topics, "rollback")
    r = event.regression
    assert r is not None and event.model_version == world.v2
    assert r.previous_version == world.v1
    assert r.evaluation == 1  # decided on the first 500 labels of v2: the regression's first
    assert world.watch(world.v2) == (world.v1, 1, "regressed")

    before = world.commits()
    log = world.trigger()
    assert world.commits() == before + 1, log
    assert world.serving() == f"models:/fraud/{world.v1}"
    git = Git(world.repo)
    assert git.run("log", "-1", "--format=%P", "main").strip() == promotion
    assert git.run("diff", f"{promotion}^", "main", "--", SERVE) == ""  # exactly undone
    message = git.run("log", "-1", "--format=%B", "main")
    assert message.startswith(f'Revert "Promote fraud {world.v2} (manual)"\n'), message
    assert f"This reverts commit {promotion}." in message
    assert f"Live evidence: event {event.event_id}" in message
    assert f"{r.rows} labelled payments, {r.positives} positives" in message
    assert f"{r.previous_rows} labelled payments, {r.previous_positives} positives" in message
    for c in r.comparisons:
        line = next(x for x in message.splitlines() if x.strip().startswith(c.metric))
        assert f"{c.previous:.4f}" in line and f"{c.current:.4f}" in line, line
    assert f"Rolled-Back: {world.v2}" in message
    assert f"Trigger-Event: {event.event_id}" in message

    # Replayed: the same records read by a monitor from scratch, the event sent again.
    world.monitor("monitor-again")
    ms.send(world.topics, [event])
    assert [e.event_id for e in _kind(world.topics, "rollback")] == [event.event_id] * 3
    world.trigger()
    assert world.commits() == before + 1
    assert [(e, o) for e, o, _ in world.actions()] == [(event.event_id, "rolled_back")]

    # The same evidence does not bring v2 back: git refuses it, a shadow verdict promoting
    # it makes no commit (cooling down), and its performance events start no run.
    with pytest.raises(PromotionRefused, match="rolled back"):
        promote(world.settings, "fraud", world.v2)
    verdict = DriftEvent(
        kind="shadow_verdict", model_name="fraud", model_version=world.v1, window=event.window,
        reference_profile=f"models:/fraud/{world.v1}",
        shadow=ShadowVerdict(version=world.v2, verdict="better", action="promote", rows=3000,
                             positives=90, first_seen=T0, deadline=T0 + timedelta(hours=72)),
    )  # fmt: skip
    degraded = DriftEvent(
        kind="performance_degraded", model_name="fraud", model_version=world.v2,
        window=Window(start=later, end=later + timedelta(hours=1), row_count=EVAL),
        reference_profile=f"models:/fraud/{world.v2}/metadata.json",
        metrics={"roc_auc": 0.6, "reference_roc_auc": 0.9, "drop_roc_auc": 0.3},
    )  # fmt: skip
    ms.send(world.topics, [verdict, degraded])
    world.trigger()
    assert world.commits() == before + 1
    assert world.serving() == f"models:/fraud/{world.v1}"
    outcome = {e: (o, d) for e, o, d in world.actions()}[verdict.event_id]
    assert outcome[0] == "skipped" and "cooling down" in outcome[1], outcome
    assert world.decisions()[degraded.event_id] == "rolled_back_version"


def test_a_promotion_as_good_as_the_one_before_is_not_rolled_back(world):
    _serve_v1_then_promote(world, world.v3)
    later = T0 + timedelta(seconds=10 * 2 * EVAL)
    ms.send(world.topics, _traffic(world.v3, 3 * EVAL, True, "c", later, seed=3))
    world.monitor()
    assert _kind(world.topics, "rollback") == []
    assert world.watch(world.v3) == (world.v1, 3, "cleared")  # judged 3 times, then let go
    before = world.commits()
    world.trigger()
    assert world.commits() == before
    assert world.serving() == f"models:/fraud/{world.v3}"


def _regression(world: World, version: str, previous: str) -> DriftEvent:
    """A rollback event as the monitor writes it (its figures made up)."""
    now = T0 + timedelta(hours=5)
    window = Window(start=now, end=now + timedelta(hours=1), row_count=EVAL)
    metrics = {"rows": float(EVAL), "positives": 30.0, "pr_auc": 0.1, "roc_auc": 0.6}
    before = {"rows": float(EVAL), "positives": 30.0, "pr_auc": 0.7, "roc_auc": 0.95}
    return DriftEvent(
        kind="rollback", model_name="fraud", model_version=version, window=window,
        reference_profile=f"models:/fraud/{previous}", metrics=metrics,
        regression=Regression(
            previous_version=previous, evaluation=1, rows=EVAL, positives=30,
            previous_rows=EVAL, previous_positives=30, previous_window=window, metrics=metrics,
            previous_metrics=before, reason="made up",
        ),
    )  # fmt: skip


def test_a_revert_made_before_a_crash_is_recognised_and_a_wrong_previous_is_refused(world):
    policy = TriggerPolicy.model_validate({"model": "fraud"})
    now = datetime.now(UTC)
    promote(world.settings, "fraud", world.v2)
    # The monitor measured v2 against v3, which v2's promotion did not replace: refused.
    wrong = _regression(world, world.v2, world.v3)
    acted = act_on_rollback(world.settings, wrong, policy, None, now)
    assert acted.outcome == "refused" and f"not {world.v3}" in acted.detail, acted
    # The revert made, then the process died before recording it: acting again finds it.
    event = _regression(world, world.v2, world.v1)
    made = rollback(world.settings, "fraud", world.v2, world.v1, live=event,
                    trigger_event_id=event.event_id)  # fmt: skip
    assert made.changed and world.serving() == f"models:/fraud/{world.v1}"
    before = world.commits()
    again = act_on_rollback(world.settings, event, policy, None, now)
    assert (again.outcome, again.commit) == ("rolled_back", made.commit)
    assert world.commits() == before
    # Another event about a version that no longer serves makes no commit either.
    other = _regression(world, world.v2, world.v1).model_copy(update={"event_id": "x"})
    assert act_on_rollback(world.settings, other, policy, None, now).outcome == "skipped"
    assert world.commits() == before
    # Forced by hand, the version serves again; within the cooldown nothing reverts it.
    promote(world.settings, "fraud", world.v2, force=True)
    cooling = act_on_rollback(world.settings, other, policy, now - timedelta(hours=1), now)
    assert cooling.outcome == "skipped" and "cooling down" in cooling.detail
    assert world.serving() == f"models:/fraud/{world.v2}"
