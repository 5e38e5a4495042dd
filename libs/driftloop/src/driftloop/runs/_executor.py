"""The local executor: Argo's WorkflowTemplate run on Ray, no Kubernetes needed.

``submit`` records the run (its id is the idempotency key: a second submission of the
same id is :class:`AlreadySubmitted`) and starts a *driver* Ray Job that walks the DAG:
each task runs the template's own command — ``python -m hera.workflows.runner -e
module:function inputs.json`` — whose stdout is the task's ``outputs.result``, as a Ray
Job of its own or, for a light step (its template annotated ``driftloop/local-executor:
in-driver``), in the driver's process, sparing a Ray Job's start-up. Every transition is
saved before the next begins, so a driver that dies is resumed by :meth:`recover`
(finished tasks are not repeated, a task's running job is waited for, not restarted, and
a light step that died with its driver runs again — steps are safe to repeat) or, after
three drivers, marked failed. A run whose driver never started (the process died, or Ray
was away, right after the run was recorded) is started by :meth:`recover` or by
submitting its id again.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shlex
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from driftloop.events import WorkflowEvent, utcnow
from driftloop.runs._indriver import run_module
from driftloop.runs._jobs import RUNNING, JobExists, RayJobs, settings_environment
from driftloop.runs._state import AlreadySubmitted, RunRecord, RunStore, StepState
from driftloop.runs._template import Task, UnsupportedFeature, WorkflowTemplate, load_template
from driftloop.settings import Settings

log = logging.getLogger(__name__)
MAX_DRIVERS = 3
_EXPR = re.compile(r"\{\{\s*([^{}]+?)\s*\}\}")


@dataclass(frozen=True)
class Submission:
    run_id: str
    created: bool
    backend: str


def template_path(settings: Settings) -> Path:
    return settings.deploy_dir / "k8s" / "base" / "workflows" / "retrain-template.yaml"


class LocalExecutor:
    name = "local"

    def __init__(self, settings: Settings, template: Path | None = None) -> None:
        self.settings = settings
        self.template_file = template or template_path(settings)
        self.template: WorkflowTemplate = load_template(self.template_file)
        self.store = RunStore(settings.runs)
        self.jobs = RayJobs(settings)

    # -- submitting -----------------------------------------------------------------------
    def parameters(self, given: dict[str, str]) -> dict[str, str]:
        defaults = self.template.defaults()
        unknown = sorted(set(given) - set(defaults))
        if unknown:
            raise ValueError(f"unknown workflow parameters: {', '.join(unknown)}")
        merged = {**defaults, **given}
        missing = sorted(name for name, value in merged.items() if value is None)
        if missing:
            raise ValueError(f"missing workflow parameters: {', '.join(missing)}")
        return {name: str(value) for name, value in merged.items()}

    def submit(self, parameters: dict[str, str], run_id: str) -> Submission:
        """Record the run and start its driver; an existing id means already submitted."""
        values = self.parameters(parameters)
        record = RunRecord(
            run_id=run_id,
            workflow=self.template.metadata.name,
            model=values.get("model", ""),
            parameters=values,
            steps={task.name: StepState(name=task.name) for task in self.template.dag()},
        )
        try:
            self.store.create(record)
        except AlreadySubmitted:
            # Submitted before — but perhaps never started: the process died, or Ray was
            # away, between recording the run and starting its driver.
            self.revive(self.store.get(run_id))
            return Submission(run_id, False, self.name)
        self._publish(record, None, "submitted", f"reason: {values.get('reason', '')}")
        self._start_driver(record)  # Ray away: raises; a resubmission or recover() starts it
        return Submission(run_id, True, self.name)

    def _start_driver(self, record: RunRecord, *, new: bool = True) -> None:
        """Start a new driver (``new``), or submit the latest one again: one whose job Ray
        never got. Driver ids are deterministic, so two processes doing this at once start
        one job (the other gets :class:`JobExists`)."""
        if new or not record.drivers:
            number = len(record.drivers) + 1
            record.drivers.append(f"{record.run_id}-{record.nonce}-driver-{number}")
            self.store.save(record)
        entrypoint = shlex.join(
            [sys.executable, "-m", "driftloop", "runs", "execute", record.run_id]
        )
        with contextlib.suppress(JobExists):  # a previous attempt got that far
            self.jobs.submit(record.drivers[-1], entrypoint, settings_environment(self.settings))

    # -- recovering -----------------------------------------------------------------------
    def recover(self) -> list[str]:
        """Start, resume or fail every unfinished run without a live driver; the ids touched.

        Raises what Ray raises when it cannot be reached (nothing is changed then)."""
        return [record.run_id for record in self.store.all() if self.revive(record)]

    def revive(self, record: RunRecord) -> bool:
        """Give an unfinished run whose driver is not running what it needs; True if it did.

        No driver yet, or one Ray does not know (never submitted, or forgotten by a
        restarted cluster): that driver is submitted (again) — it never ran, so it does not
        count. A driver that ended without finishing the run: a new one resumes it, unless
        :data:`MAX_DRIVERS` died already — then the run is failed."""
        if record.finished:
            return False
        status = self.jobs.status(record.drivers[-1]) if record.drivers else None
        if status in RUNNING:
            return False
        fresh = self.store.get(record.run_id)  # the driver may have just finished it
        if fresh.finished or fresh.drivers != record.drivers:
            return False  # finished, or another process revived it meanwhile
        if status is None:
            log.warning("run %s has no started driver; starting it", fresh.run_id)
            self._start_driver(fresh, new=False)
        elif len(fresh.drivers) >= MAX_DRIVERS:
            fresh.status, fresh.message = "failed", f"{MAX_DRIVERS} drivers died; giving up"
            self.store.save(fresh)
            self._publish(fresh, None, "failed", fresh.message)
        else:
            log.warning("run %s lost its driver %s; resuming", fresh.run_id, fresh.drivers[-1])
            self._start_driver(fresh)
        return True

    # -- executing (inside the driver job) -----------------------------------------------
    def execute(self, run_id: str) -> RunRecord:
        record = self.store.get(run_id)
        if record.finished:
            return record
        mutex = self._mutex(record)
        try:
            record.status, record.message = "running", ""
            self.store.save(record)
            self._publish(record, None, "running")
            for task in self.template.dag():
                state = record.steps.setdefault(task.name, StepState(name=task.name))
                if state.status == "succeeded":
                    continue
                if not self._run_task(record, task, state):
                    record.status = "failed"
                    record.message = f"step {task.name} failed: {state.error}"
                    self.store.save(record)
                    self._publish(record, None, "failed", record.message)
                    return record
            record.status = "succeeded"
            self.store.save(record)
            self._publish(record, None, "succeeded")
            promoted = _promoted(record)
            if promoted:
                self._publish(record, None, "promoted", promoted)
            return record
        finally:
            if mutex is not None:
                _release(mutex, run_id)

    def _run_task(self, record: RunRecord, task: Task, state: StepState) -> bool:
        template = self.template.template(task.template)
        retry = template.retryStrategy
        limit = int(retry.limit) if retry else 0
        policy = (retry.retryPolicy if retry else None) or "OnFailure"  # Argo's default
        while True:
            if state.status == "running" and state.job:
                # Resumed: the attempt's job may still run, have finished, or (if the driver
                # died between saving and submitting it) never have started.
                if self.jobs.status(state.job) is None:
                    self._submit_step(record, task, state.job)
                outcome, why = self._wait(state.job)
            elif state.status == "running" and state.driver:
                # Resumed: the attempt ran in a driver that died with it. It runs again, as
                # the same attempt: the step did not fail, its driver did (and the drivers
                # a run may use are counted).
                died, state.driver, state.started_at = state.driver, _driver(record), utcnow()
                self.store.save(record)
                again = f"attempt {state.attempts} again: {died} died during it"
                self._publish(record, task.name, "running", again)
                outcome, why = self._run_in_driver(record, task, _attempt(record, state))
            else:
                state.attempts += 1
                state.status, state.error, state.started_at = "running", None, utcnow()
                if template.in_driver:
                    state.job, state.driver = None, _driver(record)
                else:
                    state.job, state.driver = _attempt(record, state), None
                self.store.save(record)
                self._publish(record, task.name, "running", f"attempt {state.attempts}")
                if state.job:
                    self._submit_step(record, task, state.job)
                    outcome, why = self._wait(state.job)
                else:
                    outcome, why = self._run_in_driver(record, task, _attempt(record, state))
            result = self._result_file(record, task, _attempt(record, state))
            if outcome == "SUCCEEDED" and result.is_file():
                state.status, state.result, state.finished_at = (
                    "succeeded",
                    result.read_text().strip(),
                    utcnow(),
                )
                self.store.save(record)
                self._publish(record, task.name, "succeeded")
                return True
            where = state.job or f"{_attempt(record, state)} in {state.driver}"
            state.error = f"{where}: {outcome or 'lost'} {why}".strip()
            state.status, state.finished_at = "failed", utcnow()
            self.store.save(record)
            self._publish(record, task.name, "failed", state.error)
            if state.attempts > limit or not _retried(policy, outcome):
                return False
            state.job = state.driver = None  # retry with a new attempt

    def _inputs(self, record: RunRecord, task: Task, attempt: str) -> Path:
        """The task's resolved inputs, written where its runner reads them."""
        template = self.template.template(task.template)
        given = {p.name: p.value or "" for p in task.arguments.parameters}
        inputs = []
        for parameter in template.inputs.parameters:
            if parameter.name not in given and parameter.value is None:
                raise UnsupportedFeature(f"task {task.name}: no value for input {parameter.name}")
            raw = given.get(parameter.name, parameter.value or "")
            inputs.append({"name": parameter.name, "value": self._resolve(raw, record)})
        folder = Path(self.settings.runs) / record.run_id / "steps" / task.name
        folder.mkdir(parents=True, exist_ok=True)
        inputs_file = folder / f"inputs-{attempt}.json"
        inputs_file.write_text(json.dumps(inputs))
        return inputs_file

    def _submit_step(self, record: RunRecord, task: Task, job: str) -> None:
        script = self.template.template(task.template).script
        assert script is not None  # load_template admits script templates only
        command = [sys.executable if c == "python" else c for c in script.command]
        inputs = self._inputs(record, task, job)
        entrypoint = shlex.join([*command, *script.args, str(inputs)])
        entrypoint += " > " + shlex.quote(str(self._result_file(record, task, job)))
        # JobExists: submitted before the driver died; it is waited for.
        with contextlib.suppress(JobExists):
            self.jobs.submit(job, entrypoint, settings_environment(self.settings))

    def _run_in_driver(self, record: RunRecord, task: Task, attempt: str) -> tuple[str, str]:
        """A light step's attempt, run in this process: the outcome as a Ray Job's state."""
        script = self.template.template(task.template).script
        assert script is not None  # `python -m hera.workflows.runner -e ...`, checked at load
        _, module, *arguments = script.args
        inputs = self._inputs(record, task, attempt)
        result = self._result_file(record, task, attempt)
        failed = run_module(module, [*arguments, str(inputs)], result)
        return ("FAILED", failed) if failed else ("SUCCEEDED", "")

    def _result_file(self, record: RunRecord, task: Task, job: str) -> Path:
        return Path(self.settings.runs) / record.run_id / "steps" / task.name / f"result-{job}.txt"

    def _resolve(self, text: str, record: RunRecord) -> str:
        def value(match: re.Match[str]) -> str:
            expression = match.group(1)
            if expression == "workflow.name":
                return record.run_id
            if expression.startswith("workflow.parameters."):
                return record.parameters[expression.removeprefix("workflow.parameters.")]
            found = re.fullmatch(r"tasks\.([A-Za-z0-9_-]+)\.outputs\.result", expression)
            if found:
                step = record.steps.get(found.group(1))
                if step is None or step.status != "succeeded" or step.result is None:
                    raise UnsupportedFeature(f"{expression}: that task has not succeeded")
                return step.result
            raise UnsupportedFeature(f"expression {{{{{expression}}}}} is not supported locally")

        return _EXPR.sub(value, text)

    def _wait(self, job: str, poll_s: float = 1.0) -> tuple[str | None, str]:
        """The job's final state (None: Ray lost it), and Ray's message unless it succeeded."""
        while True:
            status = self.jobs.status(job)
            if status not in RUNNING:
                return status, "" if status == "SUCCEEDED" else self.jobs.message(job)
            time.sleep(poll_s)

    def _mutex(self, record: RunRecord) -> Path | None:
        sync = self.template.spec.synchronization
        if sync is None:
            return None
        name = self._resolve(sync.mutex.name, record)
        lock = Path(self.settings.runs) / ".locks" / f"{name}.lock"
        lock.parent.mkdir(parents=True, exist_ok=True)
        while not _acquire(lock, record.run_id, self.store):
            if record.message != f"waiting for mutex {name}":
                record.message = f"waiting for mutex {name}"
                self.store.save(record)
            time.sleep(2)
        return lock

    def _publish(self, record: RunRecord, step: str | None, phase: str, message: str = "") -> None:
        """Best effort: the run record is the truth; the topic is for watchers."""
        try:
            from driftloop.kafka import EventProducer

            with EventProducer(self.settings) as producer:
                producer.send(
                    WorkflowEvent(
                        run_id=record.run_id, workflow=record.workflow, model_name=record.model,
                        step=step, phase=phase,
                        trigger_event_id=record.parameters.get("trigger-event-id") or None,
                        message=message[:2000],
                    )
                )  # fmt: skip
                producer.flush()
        except Exception as exc:
            log.warning("workflow event not published (%s %s): %s", record.run_id, phase, exc)


def _attempt(record: RunRecord, state: StepState) -> str:
    """The name of a step's current attempt: its Ray Job's id, and its files' suffix."""
    return f"{record.run_id}-{record.nonce}-{state.name}-{state.attempts}"


def _driver(record: RunRecord) -> str:
    """The driver running ``record`` (this process)."""
    return record.drivers[-1] if record.drivers else f"process {os.getpid()}"


def _retried(policy: str, outcome: str | None) -> bool:
    """Whether Argo's ``retryPolicy`` retries an attempt that ended so: a step whose process
    exited non-zero (Ray's FAILED) is a *failure*; one stopped, lost or without a result is
    an *error*."""
    if policy == "Always":
        return True
    failure = outcome == "FAILED"
    return failure if policy == "OnFailure" else not failure


def _acquire(lock: Path, run_id: str, store: RunStore) -> bool:
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        holder = lock.read_text().strip() if lock.exists() else ""
        if holder == run_id:
            return True
        try:
            alive = not store.get(holder).finished
        except (FileNotFoundError, ValueError):
            alive = False
        if alive:
            return False
        # A finished (or vanished) holder: take the lock over; one taker wins the rename.
        with contextlib.suppress(FileNotFoundError):
            lock.rename(lock.with_suffix(f".stale-{uuid.uuid4().hex[:8]}"))
        return False
    with os.fdopen(fd, "w") as out:
        out.write(run_id)
    return True


def _release(lock: Path, run_id: str) -> None:
    if lock.exists() and lock.read_text().strip() == run_id:
        lock.unlink(missing_ok=True)


def _promoted(record: RunRecord) -> str:
    """A line about the promotion if the run's last step promoted a version."""
    state = record.steps.get("promote")
    if state is None or not state.result:
        return ""
    try:
        result = json.loads(state.result)
    except json.JSONDecodeError:
        return ""
    if not result.get("promoted"):
        return ""
    return f"promoted {record.model} {result.get('version')} at {result.get('commit')}"
