"""Runs of the local executor that lost (or never had) their driver, on the real Ray head,
and ``driftloop runs`` listing them (with Ray there, and not).

The template is a cheap one — two Hera runner steps calling ``posixpath.basename`` — so
each run takes seconds: these tests are about drivers, not training.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml

from driftloop.runs import (
    LocalExecutor,
    RunRecord,
    RunStore,
    StepState,
    settings_environment,
    template_path,
)
from driftloop.settings import Settings

# Each test runs two cheap runs (a driver and two steps, each a Ray Job): 18-31 s.
pytestmark = pytest.mark.timeout(90)


def _runner_step(name: str) -> dict[str, object]:
    return {
        "name": name,
        "inputs": {"parameters": [{"name": "p"}]},
        "retryStrategy": {"limit": "1", "retryPolicy": "Always"},
        "script": {
            "image": "driftloop/driftloop:0.1.0",
            "source": "{{inputs.parameters}}",
            "command": ["python"],
            "args": ["-m", "hera.workflows.runner", "-e", "posixpath:basename"],
        },
    }


CHEAP = {
    "apiVersion": "argoproj.io/v1alpha1",
    "kind": "WorkflowTemplate",
    "metadata": {"name": "driftloop-retrain"},
    "spec": {
        "entrypoint": "retrain",
        "arguments": {"parameters": [{"name": "model"}, {"name": "reason", "value": "manual"}]},
        "templates": [
            {
                "name": "retrain",
                "dag": {
                    "tasks": [
                        {
                            "name": "first",
                            "template": "first",
                            "arguments": {
                                "parameters": [{"name": "p", "value": "/runs/{{workflow.name}}"}]
                            },
                        },
                        {
                            "name": "second",
                            "template": "second",
                            "depends": "first",
                            "arguments": {
                                "parameters": [
                                    {"name": "p", "value": "/x/{{tasks.first.outputs.result}}-2"}
                                ]
                            },
                        },
                    ]
                },
            },
            _runner_step("first"),
            _runner_step("second"),
        ],
    },
}


@pytest.fixture
def cheap(settings: Settings, tmp_path: Path) -> Settings:
    """Settings whose deploy directory holds the cheap template and whose runs are the
    test's own (drivers read both through the environment they are given)."""
    local = settings.model_copy(
        update={"state_dir": tmp_path / "state", "deploy_dir": tmp_path / "deploy"}
    )
    path = template_path(local)
    path.parent.mkdir(parents=True)
    path.write_text(yaml.safe_dump(CHEAP))
    return local


def _recorded_only(executor: LocalExecutor, run_id: str) -> RunRecord:
    """What a process leaves that died right after recording a run, before its driver."""
    record = RunRecord(
        run_id=run_id,
        workflow="driftloop-retrain",
        model="cheap",
        parameters=executor.parameters({"model": "cheap"}),
        steps={t.name: StepState(name=t.name) for t in executor.template.dag()},
    )
    executor.store.create(record)
    return record


def _finished(store: RunStore, run_id: str, timeout_s: float = 120) -> RunRecord:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        record = store.get(run_id)
        if record.finished:
            return record
        time.sleep(0.5)
    raise AssertionError(f"{run_id} did not finish: {store.get(run_id).model_dump_json()}")


def _job_ended(executor: LocalExecutor, job: str, timeout_s: float = 60) -> str | None:
    deadline = time.monotonic() + timeout_s
    while (status := executor.jobs.status(job)) in ("PENDING", "RUNNING"):
        assert time.monotonic() < deadline, f"{job} still {status}"
        time.sleep(0.5)
    return status


def _succeeded(record: RunRecord) -> None:
    assert record.status == "succeeded", record.model_dump_json(indent=2)
    assert record.steps["first"].result == record.run_id
    assert record.steps["second"].result == f"{record.run_id}-2"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_resubmission_starts_a_run_whose_driver_never_ran(cheap):
    """Two runs whose driver never ran, started again together: one submitted while Ray
    was away (its driver named and saved, never submitted) and one recorded by a process
    that died before it named a driver."""
    away = cheap.model_copy(update={"ray_dashboard_url": f"http://127.0.0.1:{_closed_port()}"})
    late = f"retrain-cheap-{uuid.uuid4().hex[:8]}"
    with pytest.raises(OSError):  # connection refused: the caller (the trigger) retries
        LocalExecutor(away).submit({"model": "cheap"}, late)
    store = RunStore(cheap.runs)
    [driver] = store.get(late).drivers  # named and saved, never submitted
    assert store.get(late).status == "pending"
    with pytest.raises(OSError):  # still away: nothing changes
        LocalExecutor(away).recover()

    executor = LocalExecutor(cheap)
    run_id = f"retrain-cheap-{uuid.uuid4().hex[:8]}"
    _recorded_only(executor, run_id)
    assert executor.store.get(run_id).status == "pending"

    again = executor.submit({"model": "cheap"}, run_id)
    assert not again.created  # the run existed; its driver is started now
    assert len(executor.store.get(run_id).drivers) == 1
    assert not executor.submit({"model": "cheap"}, run_id).created  # running: nothing new
    assert not executor.submit({"model": "cheap"}, late).created  # Ray is back
    record = _finished(executor.store, run_id)
    _succeeded(record)
    assert len(record.drivers) == 1
    assert _job_ended(executor, record.drivers[0]) == "SUCCEEDED"
    late_record = _finished(store, late)
    _succeeded(late_record)
    assert late_record.drivers == [driver]  # the same driver: it never ran, so it does not count
    assert executor.recover() == []  # finished runs are left alone


def _cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    """``driftloop <args>`` as a process configured like ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLOOP_")}
    env.update(settings_environment(settings))
    return subprocess.run(
        [sys.executable, "-m", "driftloop", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_runs_json_lists_a_finished_run_as_recorded_and_a_dead_ray_is_no_traceback(cheap):
    """Also: once Ray is back, recover starts a pending run that has no driver (once)."""
    executor = LocalExecutor(cheap)
    run_id = f"retrain-cheap-{uuid.uuid4().hex[:8]}"
    assert executor.submit({"model": "cheap"}, run_id).created
    record = _finished(executor.store, run_id)
    _succeeded(record)

    listed = _cli(cheap, "runs", "--json")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == [record.model_dump(mode="json")]
    assert _cli(cheap, "runs", "--json", "--model", "other").stdout.strip() == "[]"

    # Ray away, and a run to resume (recorded, its driver never started): listing goes on.
    waiting = f"retrain-cheap-{uuid.uuid4().hex[:8]}"
    _recorded_only(executor, waiting)
    away = cheap.model_copy(update={"ray_dashboard_url": f"http://127.0.0.1:{_closed_port()}"})
    for args in (["runs"], ["runs", "--json"]):
        shown = _cli(away, *args)
        assert shown.returncode == 0, shown.stderr
        assert "Traceback" not in shown.stderr
        assert f"Ray at {away.dashboard_url} is not reachable" in shown.stderr, shown.stderr
        assert run_id in shown.stdout and waiting in shown.stdout  # listed as recorded
    statuses = {r["run_id"]: r["status"] for r in json.loads(_cli(away, "runs", "--json").stdout)}
    assert statuses == {run_id: "succeeded", waiting: "pending"}
    # Ray is back: recover starts the pending run that has no driver, once.
    assert executor.recover() == [waiting]
    assert executor.recover() == []  # its driver runs (or has finished)
    _succeeded(_finished(executor.store, waiting))
