"""The retraining steps as Hera runner scripts: each calls one library function.

``python -m hera.workflows.runner -e driftloop_workflows.steps:<fn> <inputs.json>`` runs a
step the same way on Argo and in the local executor; what a function returns (a JSON
object) is printed on stdout and becomes the task's ``outputs.result``. Logs go to
stderr, so they never mix into the result.

build-dataset, evaluate, register and promote are light (seconds of work after their
imports: the dataset's as-of join took 2.6 s for a demo run's 25 k labelled rows, in a
Ray Job that took 32 s in all): annotated :data:`~driftloop.runs.IN_DRIVER`, the local
executor runs them in its driver's process instead of paying a Ray Job's start-up for
each. train stays a Ray Job of its own, so that a driver that dies does not take the
training with it. On Argo every step is a pod all the same.
"""

import logging
from typing import Any

from hera.workflows import RetryStrategy, script

from driftloop.runs import IN_DRIVER

IMAGE = "driftloop/driftloop:0.1.0"
"""The image every step runs in (built from this repository; see deploy/k8s)."""

TRANSIENT = RetryStrategy(limit="2", retry_policy="Always")
"""Steps that read or write shared storage or talk to Ray retry twice."""


def _logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")


@script(constructor="runner", image=IMAGE, retry_strategy=TRANSIENT, annotations=IN_DRIVER)
def build_dataset(
    model: str, window: str, window_end: str, run_id: str, change_point: str
) -> dict[str, Any]:
    from driftloop.retrain import build_dataset_step

    _logging()
    return build_dataset_step(model, window, window_end, run_id, change_point)


@script(constructor="runner", image=IMAGE, retry_strategy=TRANSIENT)
def train(model: str, dataset: str, run_id: str) -> dict[str, Any]:
    from driftloop.retrain import train_step

    _logging()
    return train_step(model, dataset, run_id)


@script(constructor="runner", image=IMAGE, retry_strategy=TRANSIENT, annotations=IN_DRIVER)
def evaluate(model: str, dataset: str, candidate: str) -> dict[str, Any]:
    from driftloop.retrain import evaluate_step

    _logging()
    return evaluate_step(model, dataset, candidate)


@script(constructor="runner", image=IMAGE, retry_strategy=TRANSIENT, annotations=IN_DRIVER)
def register(
    model: str, dataset: str, candidate: str, evaluation: str, trigger_event_id: str, reason: str
) -> dict[str, Any]:
    from driftloop.retrain import register_step

    _logging()
    return register_step(model, dataset, candidate, evaluation, trigger_event_id, reason)


@script(constructor="runner", image=IMAGE, annotations=IN_DRIVER)
def promote(
    model: str, registered: str, evaluation: str, trigger_event_id: str, reason: str
) -> dict[str, Any]:
    """Not retried by Argo: promotion is idempotent, but a refusal is a decision."""
    from driftloop.retrain import promote_step

    _logging()
    return promote_step(model, registered, evaluation, trigger_event_id, reason)
