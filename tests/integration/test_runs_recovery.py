"""Runs of the local executor that lost (or never had) their driver, on the real Ray head,
and ``driftloop runs`` listing them (with Ray there, and not).

The template is a cheap one — two Hera runner steps calling ``posixpath.basename`` — so
each run takes seconds: these tests are about drivers, not training. A variant runs light
steps in the driver, one (a shell command: ``subprocess.call(args, shell="true")``) slow
enough to kill its driver during it.
"""

from __future__ import annotations

import copy
import json
import os
import shlex
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from driftloop.raycluster import dashboard_request
from driftloop.runs import (
    IN_DRIVER,
    LocalExecutor,
    RunRecord,
    RunStore,
    StepState,
    run_id_for_event,
    settings_environment,
    template_path,
)
from driftloop.settings import Settings

# Each test runs two cheap runs (a driver and two steps, each a Ray Job): 18-31 s; or one
# with light steps and two drivers.
pytestmark = pytest.mark.timeout(90)


def _runner_step(
    name: str, function: str = "posixpath:basename", parameter: str = "p", **fixed: str
) -> dict[str, object]:
    inputs = [{"name": parameter}, *({"name": k, "value": v} for k, v in fixed.items())]
    return {
        "name": name,
        "inputs": {"parameters": inputs},
        "retryStrategy": {"limit": "1", "retryPolicy": "Always"},
        "script": {
            "image": "driftloop/driftloop:0.1.0",
            "source": "{{inputs.parameters}}",
            "command": ["python"],
            "args": ["-m", "hera.workflows.runner", "-e", function],
        },
    }


def _in_driver(step: dict[str, object]) -> dict[str, object]:
    return {**step, "metadata": {"annotations": dict(IN_DRIVER)}}


def _task(name: str, parameter: str, value: str, after: str | None) -> dict[str, object]:
    given = {"name": name, "template": name}
    depends = {"depends": after} if after else {}
    return {**given, **depends, "arguments": {"parameters": [{"name": parameter, "value": value}]}}


def _light(trace: Path, last: tuple[str, str]) -> dict[str, Any]:
    """first (a Ray Job) → nap (in the driver: appends a line to ``trace``, sleeps 4 s) →
    ``last`` (in the driver: a (function, parameter) given ``/x/<first's result>-2``)."""
    function, parameter = last
    document = copy.deepcopy(CHEAP)
    nap = f"echo ran >> {shlex.quote(str(trace))} && sleep 4"
    document["spec"]["templates"] = [
        {
            "name": "retrain",
            "dag": {
                "tasks": [
                    _task("first", "p", "/runs/{{workflow.name}}", None),
                    _task("nap", "args", nap, "first"),
                    _task("second", parameter, "/x/{{tasks.first.outputs.result}}-2", "nap"),
                ]
            },
        },
        _runner_step("first"),
        _in_driver(_runner_step("nap", "subprocess:call", "args", shell="true")),
        _in_driver(_runner_step("second", function, parameter)),
    ]
    return document


CHEAP: dict[str, Any] = {
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


def _with_template(settings: Settings, tmp_path: Path, template: dict[str, Any]) -> Settings:
    """Settings whose deploy directory holds ``template`` and whose runs are the test's
    own (drivers read both through the environment they are given)."""
    local = settings.model_copy(
        update={"state_dir": tmp_path / "state", "deploy_dir": tmp_path / "deploy"}
    )
    path = template_path(local)
    path.parent.mkdir(parents=True)
    path.write_text(yaml.safe_dump(template))
    return local


@pytest.fixture
def cheap(settings: Settings, tmp_path: Path) -> Settings:
    return _with_template(settings, tmp_path, CHEAP)


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


@pytest.fixture
def cheap_cli(settings: Settings, tmp_path: Path) -> Settings:
    """The cheap template with every parameter `driftloop retrain` passes."""
    template = copy.deepcopy(CHEAP)
    template["spec"]["arguments"]["parameters"] += [
        {"name": n, "value": ""} for n in ("window", "window-end", "trigger-event-id")
    ]
    return _with_template(settings, tmp_path, template)


def test_retrain_with_ray_away_records_the_run_and_says_so_without_a_traceback(cheap_cli):
    """`driftloop retrain` while Ray is away: exit 1 with one line that names the run and
    what starts it; the run is recorded (nothing lost) and starts once Ray answers."""
    cheap = cheap_cli
    away = cheap.model_copy(update={"ray_dashboard_url": f"http://127.0.0.1:{_closed_port()}"})
    event = uuid.uuid4().hex[:12]
    shown = _cli(away, "retrain", "--model", "cheap", "--no-wait", "--trigger-event-id", event)
    run_id = run_id_for_event(event)
    assert shown.returncode == 1
    assert "Traceback" not in shown.stderr
    assert f"run {run_id} is recorded, but Ray at {away.dashboard_url} is not reachable" in (
        shown.stderr
    )
    assert "`driftloop runs` starts it once Ray answers, as does this command again" in (
        shown.stderr
    )
    executor = LocalExecutor(cheap)
    assert executor.store.get(run_id).status == "pending"
    again = _cli(cheap, "retrain", "--model", "cheap", "--no-wait", "--trigger-event-id", event)
    assert again.returncode == 0, again.stderr
    assert f"already submitted {run_id} (local)" in again.stdout
    _succeeded(_finished(executor.store, run_id))


def test_retrain_without_the_template_says_where_it_looked(cheap_cli, tmp_path):
    elsewhere = cheap_cli.model_copy(update={"deploy_dir": tmp_path / "no-deploy"})
    shown = _cli(elsewhere, "retrain", "--model", "cheap", "--no-wait")
    assert shown.returncode == 1
    assert "Traceback" not in shown.stderr
    missing = tmp_path / "no-deploy/k8s/base/workflows/retrain-template.yaml"
    assert f"no retraining template at {missing}" in shown.stderr
    assert "DRIFTLOOP_DEPLOY_DIR" in shown.stderr


def _until(predicate: Callable[[], bool], what: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_light_steps_run_in_the_driver_and_one_that_died_with_it_runs_again(settings, tmp_path):
    trace = tmp_path / "nap.trace"
    light = _with_template(settings, tmp_path, _light(trace, ("posixpath:basename", "p")))
    executor = LocalExecutor(light)
    store = executor.store
    run_id = f"retrain-cheap-{uuid.uuid4().hex[:8]}"
    assert executor.submit({"model": "cheap"}, run_id).created

    # Kill the driver while nap runs in it (after its trace line, during its sleep).
    _until(lambda: store.get(run_id).steps["nap"].status == "running" and trace.exists(), "nap")
    [driver] = store.get(run_id).drivers
    dashboard_request(light, "POST", f"/api/jobs/{driver}/stop")
    assert _job_ended(executor, driver) == "STOPPED"
    nap = store.get(run_id).steps["nap"]
    assert (nap.status, nap.job, nap.driver) == ("running", None, driver)

    assert executor.recover() == [run_id]
    record = _finished(store, run_id)
    _succeeded(record)
    resumed = record.drivers[-1]
    assert record.drivers == [driver, resumed]
    first = record.steps["first"]  # a Ray Job, run once
    assert first.job is not None and first.driver is None and first.attempts == 1
    assert executor.jobs.status(first.job) == "SUCCEEDED"
    for name in ("nap", "second"):  # in the resumed driver: no job, one attempt each
        step = record.steps[name]
        assert (step.job, step.driver, step.attempts) == (None, resumed, 1)
    assert trace.read_text() == "ran\nran\n"  # nap began twice: killed once, then done

    listed = _cli(light, "runs").stdout.splitlines()
    where = {line.split()[0]: line.split()[-2:] for line in listed if "attempts" in line}
    assert where == {"first": ["ray", "job"], "nap": ["in", "driver"], "second": ["in", "driver"]}


def test_a_light_step_that_fails_is_retried_in_the_driver_as_the_template_says(settings, tmp_path):
    """second reads the size of a file that does not exist: two attempts (retryStrategy
    limit 1), each failing in the driver with the step's own error; the run fails."""
    failing = _light(tmp_path / "nap.trace", ("posixpath:getsize", "filename"))
    light = _with_template(settings, tmp_path, failing)
    executor = LocalExecutor(light)
    run_id = f"retrain-cheap-{uuid.uuid4().hex[:8]}"
    assert executor.submit({"model": "cheap"}, run_id).created
    record = _finished(executor.store, run_id)
    assert record.status == "failed"
    second = record.steps["second"]
    [driver] = record.drivers
    assert (second.status, second.attempts, second.job, second.driver) == (
        "failed", 2, None, driver,
    )  # fmt: skip
    assert second.error is not None and f"in {driver}: FAILED FileNotFoundError" in second.error
    assert record.message.startswith("step second failed:")
    assert _job_ended(executor, driver) == "FAILED"  # the driver reports the failed run
    assert "FileNotFoundError" in executor.jobs.logs(driver)  # the step's log is the driver's
