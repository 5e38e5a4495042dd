"""The retraining workflow on the local executor: the rendered WorkflowTemplate run as Ray
Jobs against the real Ray head, Feast files and a real git repository, with the driver
killed half-way and resumed."""

from __future__ import annotations

import json
import shutil
import time
import uuid
from pathlib import Path

import pytest
import yaml

from driftloop.gitops import Git
from driftloop.models import ModelStore
from driftloop.raycluster import dashboard_request
from driftloop.runs import LocalExecutor, RunStore, run_id_for_event
from tests.integration.history_support import END, ROOT

# The run (about 95 s): five steps, each a Ray Job, a driver killed and resumed; plus
# the shared history (about 15 s) when this module is the first to need it.
pytestmark = pytest.mark.timeout(330)


def _git(repo: Path, *args: str) -> str:
    return Git(repo).run(*args)


@pytest.fixture(scope="module")
def gitops(tmp_path_factory, history):
    """The shared simulated history and features, with a deploy repository of its own
    (main holds deploy/), and runs and models under its own directory."""
    tmp = tmp_path_factory.mktemp("retrain")
    repo = tmp / "deploy-repo"
    (repo / "deploy" / "apps").mkdir(parents=True)
    shutil.copytree(ROOT / "deploy" / "apps" / "fraud", repo / "deploy" / "apps" / "fraud")
    shutil.copytree(ROOT / "deploy" / "k8s" / "base" / "workflows",
                    repo / "deploy" / "k8s" / "base" / "workflows")  # fmt: skip
    spec = yaml.safe_load((repo / "deploy/apps/fraud/model.yaml").read_text())
    spec["trainer"].update({"num_boost_round": 60, "report_every": 30, "num_workers": 1})
    (repo / "deploy/apps/fraud/model.yaml").write_text(yaml.safe_dump(spec))
    _git(repo, "init", "--quiet", "--initial-branch", "main")
    _git(repo, "add", ".")
    _git(repo, "commit", "--quiet", "-m", "deploy: fraud")
    return history.model_copy(
        update={
            "deploy_dir": repo / "deploy", "git_repo": str(repo),
            "feature_repo": ROOT / "features", "model_store_uri": str(tmp / "models"),
            "runs_uri": str(tmp / "runs"),
        }
    )  # fmt: skip


def _wait_for(predicate, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(1)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def test_a_drift_event_becomes_one_run_that_survives_its_driver_and_promotes(gitops):
    executor = LocalExecutor(gitops)
    store = RunStore(gitops.runs)
    event_id = f"evt-drift-{uuid.uuid4().hex[:8]}"
    run_id = run_id_for_event(event_id)
    parameters = {"model": "fraud", "reason": "data_drift", "trigger-event-id": event_id,
                  "window": "8d", "window-end": END.isoformat()}  # fmt: skip
    first = executor.submit(parameters, run_id)
    assert first.created
    # A redelivered event names the same run: nothing new starts.
    assert not executor.submit(parameters, run_id).created
    assert [r.run_id for r in store.all()] == [run_id]

    # Kill the driver while the train step runs; the step's own Ray Job carries on.
    _wait_for(lambda: store.get(run_id).steps["train"].status == "running", 180, "train")
    driver = store.get(run_id).drivers[-1]
    dashboard_request(gitops, "POST", f"/api/jobs/{driver}/stop")
    _wait_for(lambda: executor.jobs.status(driver) not in ("PENDING", "RUNNING"), 60, "stop")
    assert not store.get(run_id).finished
    assert executor.recover() == [run_id]
    record = _wait_for(
        lambda: (r := store.get(run_id)).finished and r, 420, "the resumed run to finish"
    )
    assert record.status == "succeeded", record.model_dump_json(indent=2)
    assert len(record.drivers) == 2
    assert [s.status for s in record.steps.values()] == ["succeeded"] * 5
    # Nothing was repeated: the resumed driver waited for the running job.
    assert {name: s.attempts for name, s in record.steps.items()} == dict.fromkeys(
        ["build-dataset", "train", "evaluate", "register", "promote"], 1
    )
    for step in record.steps.values():
        assert executor.jobs.status(step.job) == "SUCCEEDED"  # each step was a Ray Job

    registered = json.loads(record.steps["register"].result or "{}")
    version = registered["version"]
    stored = ModelStore(gitops.model_store).get("fraud", version)
    assert stored.metadata.trigger_event_id == event_id
    assert stored.metadata.extra["reason"] == "data_drift"

    # Promotion is a commit on main of the deploy repo, and its record names the event.
    repo = Path(gitops.git_repo)
    served = yaml.safe_load(_git(repo, "show", "main:deploy/apps/fraud/serve.yaml"))
    user_config = served["applications"][0]["deployments"][0]["user_config"]
    assert user_config["model_uri"] == f"models:/fraud/{version}"
    assert user_config["model_digest"] == stored.sha256
    message = _git(repo, "log", "-1", "--format=%B", "main")
    assert f"Trigger-Event: {event_id}" in message and f"Version: {version}" in message
    assert "Gate: passed" in message
    assert _git(repo, "rev-parse", "main") == _git(repo, "rev-parse", f"promote/fraud-{version}")
