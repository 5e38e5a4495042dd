"""Helpers for the trigger service's integration tests: drift events, a deploy directory
of the tests' own, the service as a subprocess, and readers of what it left behind."""

from __future__ import annotations

import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import yaml

from driftloop.events import ColumnDrift, DriftEvent, Event, Window
from driftloop.kafka import EventConsumer
from driftloop.models import Feature, FeatureSpec, Lineage, ModelStore, RowCounts, TrainingWindow
from driftloop.runs import RunRecord, RunStore
from driftloop.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
START = datetime(2026, 6, 1, tzinfo=UTC)
E = TypeVar("E", bound=Event)


def drift_event(model: str, i: int, *, drifted: int = 3, version: str = "v1") -> DriftEvent:
    """The ``i``-th window (10 minutes each) of ``model`` with ``drifted`` drifted columns."""
    start = START + timedelta(minutes=10 * i)
    columns = [
        ColumnDrift(column=f"f{c}", algorithm="ks", statistic=0.3 if c < drifted else 0.02,
                    p_value=1e-6 if c < drifted else 0.5,
                    category="DRIFT" if c < drifted else "NO_DRIFT")
        for c in range(4)
    ]  # fmt: skip
    return DriftEvent(
        kind="data_drift", model_name=model, model_version=version,
        window=Window(start=start, end=start + timedelta(minutes=10), row_count=2000),
        reference_profile=f"models:/{model}/{version}/reference", columns=columns,
        metrics={"drifted_columns": float(drifted), "tested_columns": 4.0},
    )  # fmt: skip


def performance_event(model: str, i: int, *, drop: float = 0.1) -> DriftEvent:
    start = START + timedelta(minutes=10 * i)
    return DriftEvent(
        kind="performance_degraded", model_name=model, model_version="v1",
        window=Window(start=start, end=start + timedelta(minutes=10), row_count=2000),
        reference_profile=f"models:/{model}/v1/metadata.json",
        metrics={"roc_auc": 0.9 - drop, "reference_roc_auc": 0.9, "drop_roc_auc": drop},
    )  # fmt: skip


POLICY = """\
model: {model}
data_drift: {{min_drifted_columns: {min_columns}, min_statistic: {{ks: 0.1}}}}
performance: {{min_drop: {{roc_auc: 0.05}}}}
cooldown: 6h
daily_budget: 3
window: 30d
"""


TEMPLATE = Path("k8s") / "base" / "workflows" / "retrain-template.yaml"


def without_retries(rendered: str) -> str:
    """The rendered workflow template with every step's ``retryStrategy`` removed: a step
    that fails, fails once (each attempt would be a Ray Job start-up of 15-40 s)."""
    document = yaml.safe_load(rendered)
    for template in document["spec"]["templates"]:
        template.pop("retryStrategy", None)
    return yaml.safe_dump(document, sort_keys=False)


def deploy_dir(root: Path, models: dict[str, int]) -> Path:
    """A deploy directory holding the rendered workflow template, its steps without
    retries, and, per model, a trigger policy needing that many drifted columns. No
    model.yaml and no history data: a run the trigger submits fails in its first step's
    one attempt, quickly."""
    deploy = root / "deploy"
    (deploy / TEMPLATE).parent.mkdir(parents=True)
    (deploy / TEMPLATE).write_text(without_retries((ROOT / "deploy" / TEMPLATE).read_text()))
    for model, min_columns in models.items():
        (deploy / "apps" / model).mkdir(parents=True, exist_ok=True)
        (deploy / "apps" / model / "trigger.yaml").write_text(
            POLICY.format(model=model, min_columns=min_columns)
        )
    return deploy


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def environment(settings: Settings, root: Path, deploy: Path, **extra: str) -> dict[str, str]:
    env = {
        "DRIFTLOOP_STATE_DIR": str(root / "state"),
        "DRIFTLOOP_DEPLOY_DIR": str(deploy),
        "DRIFTLOOP_TOPIC_PREFIX": settings.topic_prefix,
        "DRIFTLOOP_TRIGGER_GROUP": f"trigger-{root.name}",
        "DRIFTLOOP_TRIGGER_METRICS_PORT": str(free_port()),
        "DRIFTLOOP_TRIGGER_LINGER_S": "0.3",
    }
    env.update({f"DRIFTLOOP_{k.upper()}": v for k, v in extra.items()})
    return env


def start(env: dict[str, str], log: Path, idle_s: float = 3) -> subprocess.Popen[bytes]:
    """The service as a process that exits once idle; its log goes to ``log`` (a file, so
    a chatty run never blocks on a full pipe)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLOOP_TRIGGER_")}
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "driftloop_trigger.cli", "run", "--exit-when-idle", str(idle_s)],
            cwd=ROOT, env={**clean, **env}, stdout=subprocess.DEVNULL, stderr=out,
        )  # fmt: skip


def finish(proc: subprocess.Popen[bytes], log: Path, timeout_s: float = 120) -> int:
    """Wait for the process; its exit code (negative: the signal that ended it)."""
    try:
        return proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError(f"the trigger did not exit: {tail(log)}") from None


def tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:]


def scrape_until_exit(proc: subprocess.Popen[bytes], port: int, timeout_s: float) -> str:
    """The last /metrics page the process served before it exited by itself."""
    deadline = time.monotonic() + timeout_s
    body = ""
    while proc.poll() is None:
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            raise AssertionError("the trigger did not exit when idle")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                body = r.read().decode()
        except OSError:
            pass
        time.sleep(0.2)
    return body


def decisions(root: Path) -> list[dict[str, object]]:
    with sqlite3.connect(root / "state" / "trigger" / "decisions.sqlite") as db:
        db.row_factory = sqlite3.Row
        return [dict(r) for r in db.execute("SELECT * FROM decisions ORDER BY seq")]


def recorded_offsets(root: Path) -> int:
    """Records the trigger's own checkpoint says it is past (all partitions)."""
    with sqlite3.connect(root / "state" / "trigger" / "decisions.sqlite") as db:
        (total,) = db.execute("SELECT coalesce(sum(next_offset), 0) FROM offsets").fetchone()
    return int(total)


def runs(root: Path, model: str | None = None) -> list[RunRecord]:
    return RunStore(root / "state" / "runs").all(model)


def read_all(settings: Settings, contract: type[E], until: Callable[[list[E]], bool]) -> list[E]:
    """``contract`` events from the start of their topic, read until ``until`` holds and
    a poll finds nothing more (or 60 s pass)."""
    got: list[E] = []
    reader = EventConsumer(settings, contract, group_id=f"check-{time.time_ns()}")
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            result = reader.poll_batch(lambda b: got.extend(r.event for r in b), timeout_s=1)
            if not result.received and until(got):
                break
    finally:
        reader.close()
    return got


def wait_runs_finished(root: Path, timeout_s: float = 240) -> list[RunRecord]:
    """Every run of this state directory, once none is left pending or running."""
    deadline = time.monotonic() + timeout_s
    while True:
        records = runs(root)
        if all(r.finished for r in records):
            return records
        if time.monotonic() > deadline:
            raise AssertionError(f"runs still active: {[r.run_id for r in records]}")
        time.sleep(1)


# -- a deploy repository the trigger commits to (shadow verdicts, rollbacks) ----------------


def model_version(store: ModelStore, seed: int, at: datetime) -> str:
    """A small real XGBoost model over features ``a`` and ``b``, stored with a lineage
    trained up to ``at``: a version git can declare (its scores are not what is tested)."""
    import numpy as np
    import xgboost

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(200, 2))
    matrix = xgboost.DMatrix(x, label=(x[:, 0] > 0).astype(int), feature_names=["a", "b"])
    booster = bytes(xgboost.train({"seed": seed, "nthread": 1}, matrix, 3).save_raw("json"))
    lineage = Lineage(
        git_sha="0" * 40, git_dirty=False, feature_service="fraud_v1",
        feature_views_hash="sha256:x",
        training_window=TrainingWindow(start=at - timedelta(days=7), end=at),
        rows=RowCounts(train=1, validation=1, holdout=1), data_hash="sha256:y", seed=seed,
    )  # fmt: skip
    spec = FeatureSpec(features=[Feature(name="a", type="float"), Feature(name="b", type="float")])
    return store.put("fraud", booster, filename="model.json", features=spec,
                     lineage=lineage).version  # fmt: skip


def deploy_repo(base: Settings, root: Path, serving: str) -> Settings:
    """A git repository under ``root`` (branch main) whose deploy directory holds the
    shipped fraud serve.yaml with ``serving`` promoted, and the settings that commit to
    it (state and model store under ``root``)."""
    from driftloop.gitops import Git, promote

    repo = root / "repo"
    deploy = deploy_dir(repo, {"fraud": 2})
    shutil.copy(ROOT / "deploy" / "apps" / "fraud" / "serve.yaml",
                deploy / "apps" / "fraud" / "serve.yaml")  # fmt: skip
    git = Git(repo)
    git.run("init", "--quiet", "--initial-branch", "main")
    git.run("add", ".")
    git.run("commit", "--quiet", "-m", "deploy: fraud")
    settings = base.model_copy(update={
        "state_dir": root / "state", "model_store_uri": str(root / "models"),
        "git_repo": str(repo), "deploy_dir": deploy,
    })  # fmt: skip
    promote(settings, "fraud", serving)
    return settings


class ChallengerWorld:
    """A judged challenger's world: three versions in a model store under ``root``, a
    deploy repository with v1 serving and v2 declared by ``declare`` (a shadow or a
    canary: ``gitops.promote``'s keyword), a monitor policy with ``sections`` (the shadow's
    or canary's thresholds), and the trigger run once over what the monitor said."""

    def __init__(self, base: Settings, root: Path, declare: dict[str, object],
                 **sections: dict[str, object]) -> None:  # fmt: skip
        from driftloop.gitops import promote
        from tests.integration import monitor_support as ms

        self.root = root
        self.store = ModelStore(str(root / "models"))
        self.v1, self.v2, self.v3 = (model_version(self.store, s, START) for s in (1, 2, 3))
        self.repo = root / "repo"
        self.settings = deploy_repo(base, root, self.v1)
        promote(self.settings, "fraud", self.v2, **declare)  # type: ignore[arg-type]
        self.policy = root / "monitor.yaml"
        ms.policy_file(
            self.policy,
            window={"rows": 100_000, "duration_s": None, "min_rows": 100},
            performance={"labels": 1_000_000},  # the serving version's own checks: never due
            **sections,
        )

    def monitor_env(self, topics: Settings, state: str) -> dict[str, str]:
        from tests.integration import monitor_support as ms

        settings = topics.model_copy(update={"model_store_uri": str(self.root / "models")})
        return ms.monitor_env(settings, self.root / state, self.policy)

    def trigger(self, topics: Settings) -> str:
        env = environment(topics, self.root, self.settings.deploy_dir,
                          git_repo=str(self.repo), model_store_uri=str(self.root / "models"),
                          trigger_group=f"trigger-{topics.topic_prefix}")  # fmt: skip
        log = self.root / "trigger.log"
        assert finish(start(env, log), log) == 0, tail(log)
        return tail(log)

    def commits(self) -> int:
        """Commits on the deploy repository's main."""
        from driftloop.gitops import Git

        return int(Git(self.repo).run("rev-list", "--count", "main").strip())

    def actions(self) -> list[tuple[str, str]]:
        """The trigger's actions on verdicts, shadow and canary: (event id, outcome)."""
        with sqlite3.connect(self.root / "state" / "trigger" / "decisions.sqlite") as db:
            rows = db.execute("SELECT event_id, outcome FROM shadow_actions ORDER BY seq")
            return [(str(e), str(o)) for e, o in rows]
