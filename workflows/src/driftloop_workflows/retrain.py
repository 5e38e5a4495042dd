"""WorkflowTemplate ``driftloop-retrain``: build-dataset → train → evaluate → register →
promote, one run at a time per model (a mutex named after the model)."""

from __future__ import annotations

import itertools
from typing import cast

from hera.workflows import DAG, Parameter, Task, WorkflowTemplate
from hera.workflows import models as m

from driftloop_workflows import steps

NAME = "driftloop-retrain"
PARAMETERS = {
    "model": None,
    "reason": "manual",
    "trigger-event-id": "",
    "window": "7d",
    "window-end": "",
    "change-point": "",
}
"""The template's parameters and their defaults (None: required). ``change-point``: when
the drift being healed began (ISO datetime with offset, "" for none); build-dataset then
splits within regimes and the gate judges on the rows after it."""


def _p(name: str) -> str:
    return f"{{{{workflow.parameters.{name}}}}}"


def retrain_template(namespace: str = "driftloop") -> WorkflowTemplate:
    arguments = [
        Parameter(name=name) if default is None else Parameter(name=name, value=default)
        for name, default in PARAMETERS.items()
    ]
    with (
        WorkflowTemplate(
            name=NAME,
            namespace=namespace,
            entrypoint="retrain",
            arguments=arguments,
            # `mutexes`, not the `mutex` that Argo Workflows 4 no longer has (see _template.py)
            synchronization=m.Synchronization(mutexes=[m.Mutex(name=f"retrain-{_p('model')}")]),
            labels={"app.kubernetes.io/part-of": "driftloop"},
        ) as template,
        DAG(name="retrain"),
    ):
        built = steps.build_dataset(
            name="build-dataset",
            arguments={"model": _p("model"), "window": _p("window"),
                       "window_end": _p("window-end"), "run_id": "{{workflow.name}}",
                       "change_point": _p("change-point")},
        )  # fmt: skip
        trained = steps.train(
            arguments={"model": _p("model"), "dataset": built.result,
                       "run_id": "{{workflow.name}}"},
        )  # fmt: skip
        judged = steps.evaluate(
            arguments={"model": _p("model"), "dataset": built.result,
                       "candidate": trained.result},
        )  # fmt: skip
        stored = steps.register(
            arguments={"model": _p("model"), "dataset": built.result,
                       "candidate": trained.result, "evaluation": judged.result,
                       "trigger_event_id": _p("trigger-event-id"), "reason": _p("reason")},
        )  # fmt: skip
        promoted = steps.promote(
            arguments={"model": _p("model"), "registered": stored.result,
                       "evaluation": judged.result,
                       "trigger_event_id": _p("trigger-event-id"), "reason": _p("reason")},
        )  # fmt: skip
        chain = [cast(Task, t) for t in (built, trained, judged, stored, promoted)]
        for before, after in itertools.pairwise(chain):
            before >> after
    return template
