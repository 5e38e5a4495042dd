"""The subset of Argo's WorkflowTemplate the local executor runs, read strictly.

Exactly what ``workflows/`` renders is accepted: a DAG of script tasks with ``depends``
(task names joined by ``&&``), parameters, ``outputs.result``, ``retryStrategy.limit`` and
a mutex. Any other field is refused with its path — running a template "mostly" is
how a local run silently differs from the cluster's.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError


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
    retryPolicy: Literal["Always", "OnError", "OnFailure"] | None = None  # noqa: N815


class Script(_Strict):
    image: str
    command: list[str]
    args: list[str] = Field(default_factory=list)
    source: str


class Task(_Strict):
    name: str
    template: str
    depends: str | None = None
    arguments: Parameters = Field(default_factory=Parameters)


class Dag(_Strict):
    tasks: list[Task]


class Template(_Strict):
    name: str
    dag: Dag | None = None
    script: Script | None = None
    inputs: Parameters = Field(default_factory=Parameters)
    retryStrategy: Retry | None = None  # noqa: N815


class Mutex(_Strict):
    name: str


class Synchronization(_Strict):
    mutex: Mutex


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

    try:
        template = WorkflowTemplate.model_validate(yaml.safe_load(path.read_text()))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}" for error in exc.errors()
        )
        raise UnsupportedFeature(
            f"{path}: not runnable by the local executor: {problems}"
        ) from None
    template.dag()
    return template
