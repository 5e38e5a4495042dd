"""The subset of Argo's WorkflowTemplate the local executor runs, read strictly.

Exactly what ``workflows/`` renders is accepted: a DAG of Hera runner scripts
(``python -m hera.workflows.runner -e module:function`` with source
``{{inputs.parameters}}``) with ``depends`` (task names joined by ``&&``), parameters,
``outputs.result``, a ``retryStrategy`` with a whole-number ``limit`` and a policy of
Always, OnFailure or OnError, a mutex, and the :data:`LOCAL_EXECUTOR` annotation that
says where a step runs locally. Templates may refer to ``{{workflow.name}}``,
``{{workflow.parameters.<declared>}}`` and ``{{tasks.<an upstream task>.outputs.result}}``
only. Anything else — another field, an ``{{=expression}}``, an unknown task — is refused
at load time, naming it: running a template "mostly" is how a local run silently differs
from the cluster's.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator


class UnsupportedFeature(ValueError):
    """The template uses something the local executor does not implement."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Param(_Strict):
    name: str
    value: str | None = None


class Parameters(_Strict):
    parameters: list[Param] = Field(default_factory=list)


class Retry(_Strict):
    limit: int | str = 0
    # Unset: Argo's default, OnFailure. OnTransientError is not implemented.
    retryPolicy: Literal["Always", "OnError", "OnFailure"] | None = None  # noqa: N815

    @field_validator("limit")
    @classmethod
    def _whole_number(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value >= 0:
            return value
        if isinstance(value, str) and value.strip().isdigit():
            return value
        raise ValueError(
            f"retryStrategy.limit {value!r}: only a whole number runs locally (no templated"
            " or computed limit)"
        )


class Script(_Strict):
    image: str
    command: list[str]
    args: list[str] = Field(default_factory=list)
    source: str


LOCAL_EXECUTOR = "driftloop/local-executor"
"""A script template's annotation for the local executor: ``in-driver`` runs its tasks in
the driver's own process (a light step spares a Ray Job's start-up), ``ray-job`` (the
default) as Ray Jobs of their own. Argo only copies it onto the step's pod."""
IN_DRIVER = {LOCAL_EXECUTOR: "in-driver"}
"""The annotations of a light step's template (``@script(annotations=IN_DRIVER)``)."""


class TemplateMetadata(_Strict):
    annotations: dict[str, str] = Field(default_factory=dict)

    @field_validator("annotations")
    @classmethod
    def _known_place(cls, value: dict[str, str]) -> dict[str, str]:
        place = value.get(LOCAL_EXECUTOR, "ray-job")
        if place not in ("in-driver", "ray-job"):
            raise ValueError(f"{LOCAL_EXECUTOR} {place!r}: only in-driver or ray-job")
        return value


class Task(_Strict):
    name: str
    template: str
    depends: str | None = None
    arguments: Parameters = Field(default_factory=Parameters)


class Dag(_Strict):
    tasks: list[Task]


class Template(_Strict):
    name: str
    metadata: TemplateMetadata = Field(default_factory=TemplateMetadata)
    dag: Dag | None = None
    script: Script | None = None
    inputs: Parameters = Field(default_factory=Parameters)
    retryStrategy: Retry | None = None  # noqa: N815

    @property
    def in_driver(self) -> bool:
        """Whether the local executor runs this step in its driver, not as a Ray Job."""
        return self.metadata.annotations.get(LOCAL_EXECUTOR) == "in-driver"


class Mutex(_Strict):
    name: str


class Synchronization(_Strict):
    # `mutexes`: Argo Workflows 3.6 takes it beside the deprecated `mutex`, which 4.x no
    # longer knows (its full CRD prunes it: runs of one model would no longer queue).
    mutexes: list[Mutex] = Field(min_length=1, max_length=1)

    @property
    def mutex(self) -> Mutex:
        """The one mutex the local executor implements."""
        return self.mutexes[0]


class Spec(_Strict):
    entrypoint: str
    templates: list[Template]
    arguments: Parameters = Field(default_factory=Parameters)
    synchronization: Synchronization | None = None


class Metadata(_Strict):
    name: str
    namespace: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)


class WorkflowTemplate(_Strict):
    apiVersion: Literal["argoproj.io/v1alpha1"]  # noqa: N815
    kind: Literal["WorkflowTemplate"]
    metadata: Metadata
    spec: Spec

    def template(self, name: str) -> Template:
        for template in self.spec.templates:
            if template.name == name:
                return template
        raise UnsupportedFeature(f"no template named {name!r}")

    def dag(self) -> list[Task]:
        """The entrypoint's tasks in an order that respects every ``depends``."""
        entry = self.template(self.spec.entrypoint)
        if entry.dag is None:
            raise UnsupportedFeature(f"entrypoint {entry.name!r} must be a dag")
        tasks = {task.name: task for task in entry.dag.tasks}
        for task in tasks.values():
            step = self.template(task.template)
            if step.script is None:
                raise UnsupportedFeature(f"task {task.name}: only script templates run locally")
            _check_runner(step.name, step.script)
            for dependency in depends_on(task):
                if dependency not in tasks:
                    raise UnsupportedFeature(f"task {task.name} depends on unknown {dependency}")
        ordered: list[Task] = []
        done: set[str] = set()
        while len(ordered) < len(tasks):
            ready = [t for n, t in tasks.items() if n not in done and depends_on(t) <= done]
            if not ready:
                raise UnsupportedFeature("the dag has a cycle")
            for task in ready:
                ordered.append(task)
                done.add(task.name)
        return ordered

    def defaults(self) -> dict[str, str | None]:
        return {p.name: p.value for p in self.spec.arguments.parameters}

    def check_references(self) -> None:
        """Refuse every ``{{...}}`` the local executor could not resolve."""
        ordered = self.dag()
        tasks = {task.name: task for task in ordered}
        declared = set(self.defaults())

        def check(text: str | None, where: str, upstream: set[str]) -> None:
            for expression in _EXPR.findall(text or ""):
                problem = _unsupported(expression, declared, set(tasks), upstream)
                if problem:
                    raise UnsupportedFeature(f"{where}: {{{{{expression}}}}}: {problem}")

        for task in ordered:
            upstream = _ancestors(task.name, tasks)
            for parameter in task.arguments.parameters:
                check(parameter.value, f"task {task.name} argument {parameter.name}", upstream)
            for parameter in self.template(task.template).inputs.parameters:
                where = f"template {task.template} input {parameter.name}"
                check(parameter.value, where, upstream)
        for parameter in self.spec.arguments.parameters:
            check(parameter.value, f"workflow parameter {parameter.name}", set())
        if self.spec.synchronization is not None:
            check(self.spec.synchronization.mutex.name, "the mutex name", set())


_EXPR = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
_TASK_RESULT = re.compile(r"tasks\.([A-Za-z0-9_-]+)\.outputs\.result")
RUNNER_COMMAND = ["python"]
RUNNER_MODULE = ["-m", "hera.workflows.runner", "-e"]
RUNNER_SOURCE = "{{inputs.parameters}}"


def _check_runner(name: str, script: Script) -> None:
    """Only Hera runner scripts run locally: a step is a function, not inline source."""
    if script.source.strip() != RUNNER_SOURCE:
        raise UnsupportedFeature(
            f"template {name}: script source must be {RUNNER_SOURCE!r} (a Hera runner"
            " script); inline script source does not run locally"
        )
    entry = script.args[len(RUNNER_MODULE) :]
    if (
        script.command != RUNNER_COMMAND
        or script.args[: len(RUNNER_MODULE)] != RUNNER_MODULE
        or len(entry) != 1
        or not re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*", entry[0])
    ):
        raise UnsupportedFeature(
            f"template {name}: only `python -m hera.workflows.runner -e module:function` runs"
            f" locally, not {' '.join([*script.command, *script.args])!r}"
        )


def _unsupported(expression: str, declared: set[str], tasks: set[str], upstream: set[str]) -> str:
    """Why the local executor cannot resolve ``{{expression}}`` ("" if it can)."""
    if expression.startswith("="):
        return "expression templates ({{=...}}) are not supported locally"
    if expression == "workflow.name":
        return ""
    if expression.startswith("workflow.parameters."):
        name = expression.removeprefix("workflow.parameters.")
        return "" if name in declared else f"the workflow declares no parameter {name!r}"
    found = _TASK_RESULT.fullmatch(expression)
    if found:
        task = found.group(1)
        if task not in tasks:
            return f"there is no task {task!r}"
        return "" if task in upstream else f"task {task!r} is not upstream of this task"
    return "only workflow.name, workflow.parameters.* and tasks.*.outputs.result run locally"


def _ancestors(name: str, tasks: dict[str, Task]) -> set[str]:
    out: set[str] = set()
    todo = list(depends_on(tasks[name]))
    while todo:
        current = todo.pop()
        if current not in out:
            out.add(current)
            todo.extend(depends_on(tasks[current]))
    return out


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


def depends_on(task: Task) -> set[str]:
    """The task names in ``depends``: only ``a && b`` is supported (all must succeed)."""
    if not task.depends:
        return set()
    names = {part.strip() for part in task.depends.split("&&")}
    bad = sorted(n for n in names if not _NAME.match(n))
    if bad:
        raise UnsupportedFeature(
            f"task {task.name}: depends {task.depends!r} — only task names joined by && run "
            "locally (no ||, !, or .Succeeded/.Failed)"
        )
    return names


def load_template(path: Path) -> WorkflowTemplate:
    """Read and check a rendered WorkflowTemplate; refuse anything not supported."""
    import yaml

    if not path.is_file():
        raise FileNotFoundError(
            f"no retraining template at {path}: run from the repository's root, or set "
            "DRIFTLOOP_DEPLOY_DIR to its deploy/ directory (`make render` writes the template)"
        )
    try:
        template = WorkflowTemplate.model_validate(yaml.safe_load(path.read_text()))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}" for error in exc.errors()
        )
        raise UnsupportedFeature(
            f"{path}: not runnable by the local executor: {problems}"
        ) from None
    template.check_references()
    return template
