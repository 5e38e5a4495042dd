"""The retraining workflow on the local executor: the rendered WorkflowTemplate run on the
real Ray head (train as a Ray Job, the light steps in the driver) against
Feast files and a real git repository, with the driver killed half-way and resumed."""

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

# The run (about 60 s): train as a Ray Job and four steps in the driver, a driver killed
# and resumed; a third driver repeating promote (about 15 s); plus the shared history
# (about 15 s) when this module is the first to need it.
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


@pytest.fixture(scope="module")
def drift_run(gitops) -> tuple[str, str]:
    """A drift event's run whose driver was killed while train ran, and resumed: the
    event's id and the run's, once the run finished."""
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
    _wait_for(lambda: store.get(run_id).finished, 420, "the resumed run to finish")
    return event_id, run_id


def test_a_drift_event_becomes_one_run_that_survives_its_driver_and_promotes(gitops, drift_run):
    executor = LocalExecutor(gitops)
    event_id, run_id = drift_run
    record = RunStore(gitops.runs).get(run_id)
    assert record.status == "succeeded", record.model_dump_json(indent=2)
    assert len(record.drivers) == 2
    assert [s.status for s in record.steps.values()] == ["succeeded"] * 5
    # Nothing was repeated: the resumed driver waited for the running job.
    assert {name: s.attempts for name, s in record.steps.items()} == dict.fromkeys(
        ["build-dataset", "train", "evaluate", "register", "promote"], 1
    )
    # Training was a Ray Job, which outlived the first driver; the light steps ran in a
    # driver: the dataset in the first, the rest in the resumed one.
    train = record.steps["train"]
    assert train.driver is None and train.job is not None
    assert executor.jobs.status(train.job) == "SUCCEEDED"
    assert record.steps["build-dataset"].job is None
    assert record.steps["build-dataset"].driver == record.drivers[0]
    for name in ("evaluate", "register", "promote"):
        assert record.steps[name].job is None
        assert record.steps[name].driver == record.drivers[-1]

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


def test_promote_that_died_with_its_driver_runs_again_and_makes_no_second_commit(gitops, drift_run):
    """The worst moment for a driver to die: promote has fast-forwarded main, and the run
    record still says it runs. The next driver runs it again."""
    executor = LocalExecutor(gitops)
    store = RunStore(gitops.runs)
    _, run_id = drift_run
    repo = Path(gitops.git_repo)
    main, commits = _git(repo, "rev-parse", "main"), _git(repo, "rev-list", "--count", "--all")
    record = store.get(run_id)
    promote = record.steps["promote"]
    assert promote.status == "succeeded" and promote.driver == record.drivers[-1]
    driver = record.drivers[-1]  # it saved the run; it may not have exited yet
    _wait_for(lambda: executor.jobs.status(driver) not in ("PENDING", "RUNNING"), 60, "exit")
    record.status = promote.status = "running"
    promote.result = promote.finished_at = None
    store.save(record)

    assert executor.recover() == [run_id]  # its driver is gone: a third one resumes it
    record = _wait_for(lambda: (r := store.get(run_id)).finished and r, 120, "the run")
    assert record.status == "succeeded", record.model_dump_json(indent=2)
    assert len(record.drivers) == 3
    again = record.steps["promote"]
    assert (again.attempts, again.job, again.driver) == (1, None, record.drivers[-1])
    assert [s.status for s in record.steps.values()] == ["succeeded"] * 5
    assert _git(repo, "rev-parse", "main") == main
    assert _git(repo, "rev-list", "--count", "--all") == commits  # no commit made at all
    result = json.loads(again.result or "{}")
    assert result["commit"] == main.strip()
    # the run's own promotion, found on main: reported as promoted (the trigger and the
    # workflow events count it), not as "nothing changed"
    assert result["promoted"] is True, result
