"""Automatic rollback seen by the clients (issue 21 item 5): a deliberately worse version
promoted by hand is reverted while the real Ray Serve answers a continuous load, and no
request fails and no prediction is lost.

Every part is the real one, as processes: a Serve application of the fraud model that
``driftloop-sync run`` applies from a git repository of the test's own; the monitor
reading the replica's prediction log and the labels from the broker; the trigger making
the ``git revert``. The test only sends payments, publishes their labels (fraud is an
amount far above the customer's mean: what v1 learned, and v2, trained on the same labels
shuffled, did not) and promotes v2 by hand once v1's first labelled evaluation is in.
Nothing else acts: v2 is judged on its first labelled evaluation (500 labels), the
trigger reverts the promotion and the sync service applies the revert like any commit.

Asserted: the rollback was decided on v2's first labelled evaluation; every request was
answered 200; the application ends up answering with v1; every answer's prediction is in
the prediction log exactly once, with the version that answered; no request sent after
v1's first answer after the revert was answered by v2.

51, 109 and 81 s of pytest in three runs on 2 cores that other test processes kept busy
(load average about 9): the sync world 17-36 s, the rest 30-69 s, of which the load ran
14-46 s, most of it waiting for the monitor's first evaluation of v1; v1 answered again
1.5-2.8 s after v2's labels were sent. It applies serve.yaml through Ray's REST API, which
replaces every application deployed that way: a ``stack``-lane module (tests/conftest.py).
"""

from __future__ import annotations

import random
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from driftloop.events import Label
from driftloop.gitops import Git, declared, promote, read_state
from driftloop.models import ModelVersion
from tests.integration import monitor_support as ms
from tests.integration import serving_support as support
from tests.integration import sync_support as sync
from tests.integration import trigger_support as ts

# about 2x the slowest run measured (109 s; see above)
pytestmark = pytest.mark.timeout(240)

EVAL = 500  # labelled payments per evaluation (the monitor's performance.labels here)
FRAUD = 240.0  # an amount above 6x every known customer's 7-day mean (40): fraud
WAIT_S = 180.0  # for a step of the chain, on a busy machine


class Payments:
    """The load's request bodies, about 8 % of them fraud, and the truth about each: a
    payment is fraud when its amount exceeds FRAUD."""

    def __init__(self) -> None:
        self.fraud: dict[str, bool] = {}

    def __call__(self, i: int) -> dict[str, Any]:
        rng = random.Random(i)
        fraud = rng.random() < 0.08
        amount = rng.uniform(300, 600) if fraud else rng.uniform(5, 200)
        body = support.transaction(
            i, customer=rng.choice(support.CUSTOMERS), merchant=rng.choice(support.MERCHANTS),
            amount=round(amount, 2),
        )  # fmt: skip
        self.fraud[body["transaction_id"]] = fraud
        return body

    def labels(self, answers: list[support.Answer]) -> list[Label]:
        now = datetime.now(UTC)
        return [
            Label(transaction_id=a.transaction_id, is_fraud=self.fraud[a.transaction_id],
                  event_time=now)
            for a in answers
        ]  # fmt: skip


@dataclass
class World:
    root: Path
    settings: Any  # SyncSettings of the test's own topics, state, store and repository
    repo: Path
    v1: ModelVersion
    v2: ModelVersion


@pytest.fixture
def world(own_topics, tmp_path) -> Iterator[World]:
    """A feature repo, v1 (learned the rule) and v2 (learned nothing), and a deploy
    repository declaring the fraud application with no model yet and the trigger's
    policy for it, on topics of this test alone."""
    settings, spec, (v1,), repo = sync.sync_world(own_topics, tmp_path, (21,))
    v2 = support.put_model(settings, spec, seed=22, threshold=0.5, learned=False)
    ts.deploy_dir(repo, {"fraud": 2})
    sync.git(repo, "add", ".")
    sync.git(repo, "commit", "--quiet", "-m", "deploy: fraud's trigger policy")
    yield World(tmp_path, settings, repo, v1, v2)
    sync.remove_apps(settings, "fraud")


def _tails(root: Path) -> str:
    logs = ("sync.log", "monitor.log", "trigger.log")
    return "\n".join(f"--- {n}\n{ts.tail(root / n)}" for n in logs if (root / n).exists())


def _until(done: Callable[[], bool], what: str, world: World) -> None:
    deadline = time.monotonic() + WAIT_S
    while not done():
        assert time.monotonic() < deadline, f"{what} not after {WAIT_S:g} s\n{_tails(world.root)}"
        time.sleep(0.2)


def _services(world: World) -> tuple[list[subprocess.Popen[bytes]], int]:
    """The sync service (a pass every 0.5 s), the monitor and the trigger, as processes
    that run until the test ends them, their logs under the test's directory; and the
    monitor's metrics port."""
    s, root = world.settings, world.root
    with (root / "sync.log").open("ab") as log:
        syncing = subprocess.Popen(
            [str(sync.BIN / "driftloop-sync"), "run"],
            env=sync.process_env(s, DRIFTLOOP_SYNC_INTERVAL_S="0.5"),
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    policy = root / "monitor.yaml"
    ms.policy_file(
        policy,
        window={"rows": 100_000, "duration_s": None, "min_rows": 100},  # no drift windows
        performance={"labels": EVAL, "step": EVAL, "min_positives": 10},
        rollback={"min_rows": 400, "min_positives": 10, "evaluations": 3},
    )
    watching = ms.monitor_env(s, root / "monitor", policy)
    monitoring = ms.start_monitor(watching, idle_s=3600, log=root / "monitor.log")
    env = ts.environment(s, root / "trigger", s.deploy_dir, git_repo=str(world.repo),
                         model_store_uri=s.model_store,
                         trigger_group=f"trigger-{s.topic_prefix}")  # fmt: skip
    triggering = ts.start(env, root / "trigger.log", idle_s=3600)
    return [syncing, monitoring, triggering], int(watching["DRIFTLOOP_MONITOR_METRICS_PORT"])


def _evaluated(port: int, version: str) -> float:
    """Labelled rows of ``version``'s last evaluation, as the monitor's /metrics says."""
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    except httpx.HTTPError:
        return 0.0
    rows = {"model": "fraud", "version": version, "metric": "rows"}
    return support.sample_sum(text, "driftloop_monitor_performance", rows)


def test_a_worse_version_promoted_by_hand_is_rolled_back_under_load(world):
    s, v1, v2 = world.settings, world.v1.version, world.v2.version
    first = promote(s, "fraud", v1, reason="first model")
    assert first.commit is not None
    processes, port = _services(world)
    try:
        sync.wait_synced(s, first.commit, processes[0], world.root / "sync.log")
        sync.wait_model(s, v1)
        started = time.monotonic()
        payments = Payments()
        with support.Load(f"{s.serve_url}/fraud/predict", body=payments) as load:
            load.wait_for(v1, EVAL)
            ms.send(s, payments.labels([a for a in list(load.answers) if a.version == v1]))
            _until(lambda: _evaluated(port, v1) >= EVAL, "v1's first evaluation", world)

            promotion = promote(s, "fraud", v2)  # by hand: "Promote fraud <v2> (manual)"
            assert promotion.commit is not None
            load.wait_for(v2, EVAL, timeout_s=WAIT_S)
            ms.send(s, payments.labels([a for a in list(load.answers) if a.version == v2]))
            labelled = time.monotonic()  # v2's labels sent: the rest is the services' work
            before = load.count(v1)  # every one sent before the promotion was applied
            _until(lambda: load.count(v1) >= before + 50, "v1 answering again", world)
        revert = sync.git(world.repo, "rev-parse", "main")
        sync.wait_synced(s, revert, processes[0], world.root / "sync.log")
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=60)
    answers = load.answers
    failed = [a for a in answers if a.status != 200]
    assert failed == [], failed[:5]  # no request failed

    # The revert: one commit on the hand promotion, made by the trigger on the monitor's
    # rollback event, decided on v2's first labelled evaluation; applied by the sync.
    git = Git(world.repo)
    assert git.run("log", "-1", "--format=%P", "main").strip() == promotion.commit
    message = git.run("log", "-1", "--format=%B", "main")
    assert message.startswith('Revert "Promote fraud'), message
    assert f"Rolled-Back: {v2}" in message, message
    assert declared(git.show("main", sync.SERVE_YAML) or "", "fraud")[0] == f"models:/fraud/{v1}"
    (event,) = [e for e in ms.drift_events(s) if e.kind == "rollback"]
    assert event.model_version == v2 and event.regression is not None
    assert (event.regression.previous_version, event.regression.evaluation) == (v1, 1)
    assert f"Trigger-Event: {event.event_id}" in message
    state = read_state(s)
    assert state is not None and state.synced_sha == revert and state.last_error is None
    assert sync.served_model(s) == v1

    # No prediction lost: each answer's prediction logged once, by the version answering.
    ids = {a.request_id for a in answers}
    assert len(ids) == len(answers)
    logged = support.read_predictions(s, len(answers), keep=lambda p: p.request_id in ids)
    times = Counter(p.request_id for p in logged)
    assert [(r, times[r]) for r in ids if times[r] != 1] == []  # lost (0) or logged twice
    by_id = {p.request_id: p for p in logged}
    wrong = [a for a in answers
             if (by_id[a.request_id].transaction_id, by_id[a.request_id].model_version)
             != (a.transaction_id, a.version)]  # fmt: skip
    assert wrong == [], wrong[:5]

    # Once v1 answers again, v2 answers no request sent after that.
    first_v2 = min(a.at for a in answers if a.version == v2)
    back = min(a.at for a in answers if a.version == v1 and a.sent > first_v2)
    late = [a for a in answers if a.version == v2 and a.sent > back]
    assert late == [], late[:5]
    served = Counter(a.version for a in answers)
    print(
        f"\n{len(answers)} answers, all 200, each logged once: v1 {before} before the"
        f" promotion, v2 {served[v2]}, v1 {served[v1] - before} after the revert;"
        f" rolled back on v2's evaluation {event.regression.evaluation}"
        f" ({event.regression.rows} labels, {event.regression.positives} frauds);"
        f" v1 answered again {back - labelled:.1f} s after v2's labels were sent, the load"
        f" ran {max(a.at for a in answers) - started:.1f} s"
    )
