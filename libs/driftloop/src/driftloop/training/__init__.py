"""Training a model from its spec: Feast point-in-time features, Ray Train with XGBoost,
holdout metrics against a baseline, and a stored version with lineage.

Needs the ``training`` extra (``driftloop[training]``). Importing this package imports
neither Ray Train, XGBoost nor scikit-learn; :func:`train_model` does, when called.
"""

from driftloop.training._gate import judge
from driftloop.training._spec import (
    Distribution,
    GateSpec,
    MetricsSpec,
    ModelSpec,
    Split,
    TrainerSpec,
    TuneSpec,
    load_model_spec,
)
from driftloop.training._train import TrainResult, train_model, xgboost_params
from driftloop.training._worker import train_loop_per_worker

__all__ = [
    "Distribution",
    "GateSpec",
    "MetricsSpec",
    "ModelSpec",
    "Split",
    "TrainResult",
    "TrainerSpec",
    "TuneSpec",
    "judge",
    "load_model_spec",
    "train_loop_per_worker",
    "train_model",
    "xgboost_params",
]
