"""A shadow judged live (issue 21 item 2), with the real parts: serving and shadow
predictions and their labels on the real broker, the monitor and the trigger as
processes, and a real git repository whose serve.yaml declares the shadow.

A better shadow is promoted by one commit that carries the live evidence; a worse one is
removed by one commit; the same records and the same verdict read again make no second
commit; a monitor killed mid-stream and restarted pairs every payment once and publishes
its verdict once.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from driftloop.events import DriftEvent, Label, Prediction
from driftloop.gitops import Git, declared, declared_shadow, promote
from driftloop.settings import Settings
from tests.integration import monitor_support as ms
from tests.integration import trigger_support as ts
from tests.integration.conftest import _isolated

# Each of the module's monitor runs takes 10-20 s and each trigger run about 5 s.
pytestmark = pytest.mark.timeout(300)

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 6, 1, tzinfo=UTC)
N = 2400  # payments, one every 10 s of event time; ~6 % fraud
SERVE = "deploy/apps/fraud/serve.yaml"


def _stream(serving: str, shadow: str, shadow_better: bool, tag: str, seed: int = 0):
    """Serving and shadow predictions of the same payments and their labels, in a mixed
    order: a seventh of the shadow scores before their serving score, a tenth of the
    labels before either."""
    rng = np.random.default_rng(seed)
    y = rng.random(N) < 0.06
    weak = np.clip(rng.normal(0.3 + 0.05 * y, 0.2), 0, 1)
    strong = np.clip(rng.normal(0.3 + 0.6 * y, 0.2), 0, 1)
    serve, shade = (weak, strong) if shadow_better else (strong, weak)
    early: list[Label] = []
    preds: list[Prediction] = []
    late: list[Label] = []
    for i in range(N):
        t, tid = T0 + timedelta(seconds=10 * i), f"{tag}-t{i}"
        pair = [
            Prediction(request_id=f"{tag}-r{i}", transaction_id=tid, model_name="fraud",
                       model_version=version, score=float(s[i]), decision=bool(s[i] >= 0.5),
                       threshold=0.5, latency_ms=1.0, event_time=t, role=role)
            for version, s, role in ((serving, serve, "serving"), (shadow, shade, "shadow"))
        ]  # fmt: skip
        preds.extend(reversed(pair) if i % 7 == 0 else pair)
        label = Label(transaction_id=tid, is_fraud=bool(y[i]), event_time=t + timedelta(hours=1))
        (early if i % 10 == 0 else late).append(label)
    return [*early, *preds, *late]


def _verdicts(settings: Settings) -> list[DriftEvent]:
    return [e for e in ms.drift_events(settings) if e.kind == "shadow_verdict"]


def _declared(repo: Path) -> tuple[str | None, str | None]:
    text = Git(repo).show("main", SERVE) or ""
    return declared(text, "fraud")[0], declared_shadow(text, "fraud")[0]


def _paired(state: Path) -> int:
    with sqlite3.connect(state / "monitor" / "fraud" / "checkpoint.sqlite") as db:
        return int(db.execute("SELECT count(*) FROM shadow_paired").fetchone()[0])


@pytest.fixture(scope="module")
def world(base_settings, tmp_path_factory):
    return ts.ChallengerWorld(
        base_settings,
        tmp_path_factory.mktemp("shadow"),
        {"as_shadow": True},
        shadow={"min_rows": 1000, "min_positives": 30, "step": 500},
    )


@pytest.fixture(scope="module")
def topics(base_settings):
    """Three topic sets: the better shadow, the worse one, and the monitor's restart."""
    gens = [_isolated(base_settings) for _ in range(3)]
    yield [next(g) for g in gens]
    for g in gens:
        next(g, None)


def test_a_better_shadow_is_promoted_by_one_commit_carrying_the_evidence(world, topics):
    better = topics[0]
    ms.send(better, _stream(world.v1, world.v2, shadow_better=True, tag="b"))
    ms.run_monitor(world.monitor_env(better, "monitor-a"))
    assert _paired(world.root / "monitor-a") == N
    (event,) = _verdicts(better)
    assert event.shadow is not None and event.model_version == world.v1
    assert (event.shadow.version, event.shadow.verdict, event.shadow.action) == (
        world.v2, "better", "promote")  # fmt: skip
    assert event.shadow.rows >= 1000 and event.shadow.positives >= 30

    before = world.commits()
    log = world.trigger(better)
    assert world.commits() == before + 1, log
    assert _declared(world.repo) == (f"models:/fraud/{world.v2}", None)
    message = Git(world.repo).run("log", "-1", "--format=%B", "main")
    assert message.startswith(f"Promote fraud {world.v2} (shadow_verdict)")
    assert f"Replaces: models:/fraud/{world.v1}" in message
    assert f"Live evidence: event {event.event_id}" in message
    assert f"{event.shadow.rows} paired labelled payments, {event.shadow.positives} positives" in (
        message
    )
    for c in event.shadow.comparisons:
        line = next(x for x in message.splitlines() if x.strip().startswith(c.metric))
        assert f"{c.serving:.4f}" in line and f"{c.shadow:.4f}" in line, line
    assert f"Trigger-Event: {event.event_id}" in message

    # The same records read again by a monitor from scratch (its verdict republished) and
    # the event itself sent again: one decision, no second commit.
    ms.run_monitor(world.monitor_env(better, "monitor-a2"))
    ms.send(better, [event])
    assert [e.event_id for e in _verdicts(better)] == [event.event_id] * 3
    log = world.trigger(better)
    assert world.commits() == before + 1, log
    assert world.actions() == [(event.event_id, "promoted")]  # the copies: duplicates


def test_a_worse_shadow_is_removed_by_one_commit(world, topics):
    worse = topics[1]
    if _declared(world.repo)[0] != f"models:/fraud/{world.v2}":
        pytest.skip("needs the promotion of the previous test")
    promote(world.settings, "fraud", world.v3, as_shadow=True)
    ms.send(worse, _stream(world.v2, world.v3, shadow_better=False, tag="w"))
    ms.run_monitor(world.monitor_env(worse, "monitor-w"))
    (event,) = _verdicts(worse)
    assert event.shadow is not None
    assert (event.shadow.verdict, event.shadow.action) == ("worse", "remove")
    assert all(c.p_worse < 0.01 < c.p_better for c in event.shadow.comparisons)
    before = world.commits()
    world.trigger(worse)
    assert world.commits() == before + 1
    assert _declared(world.repo) == (f"models:/fraud/{world.v2}", None)
    message = Git(world.repo).run("log", "-1", "--format=%B", "main")
    assert message.startswith(f"Unshadow fraud {world.v3} (shadow_verdict)")
    assert f"Live evidence: event {event.event_id}" in message
    ms.send(worse, [event])
    world.trigger(worse)
    assert world.commits() == before + 1  # replayed: nothing more
    assert world.actions()[-1] == (event.event_id, "removed")


def test_a_monitor_killed_mid_stream_pairs_everything_once_and_says_its_verdict_once(world, topics):
    restart = topics[2]
    ms.send(restart, _stream(world.v1, world.v2, shadow_better=True, tag="k", seed=5))
    env = world.monitor_env(restart, "monitor-k")
    progress = ms.kill_monitor_midway(env, "SELECT count(*) FROM shadow_paired", N * 0.3)
    assert 0 < progress < N, "the kill must fall in the middle of the stream"
    ms.run_monitor(env)
    assert _paired(world.root / "monitor-k") == N
    published = [str(r["event_id"]) for r in ms.topic_records(restart, "drift-events")]
    assert len(published) == 1 and Counter(published).most_common(1)[0][1] == 1
    (event,) = _verdicts(restart)
    assert event.shadow is not None and event.shadow.verdict == "better"
