"""The steps of the retraining workflow, as library functions.

Each step takes the workflow's string parameters and returns a JSON-able dict (its
``outputs.result``); large artifacts (the dataset, the candidate model) go to the run's
work directory, ``<runs>/<run_id>/work``, and only their URIs travel between steps. The
Hera definitions in ``workflows/`` wrap these functions as runner scripts; the local
executor and Argo run the very same commands.
"""

from driftloop.retrain._steps import (
    build_dataset_step,
    evaluate_step,
    promote_step,
    register_step,
    train_step,
    work_uri,
)

__all__ = [
    "build_dataset_step",
    "evaluate_step",
    "promote_step",
    "register_step",
    "train_step",
    "work_uri",
]
