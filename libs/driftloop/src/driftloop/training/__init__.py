"""Training a model from its spec: Feast point-in-time features, Ray Train with XGBoost,
holdout metrics against a baseline, and a stored version with lineage.

Needs the ``training`` extra (``driftloop[training]``). Importing this package imports
neither Ray Train, XGBoost nor scikit-learn; :func:`train_model` does, when called.
"""

from driftloop.training._dataset import Dataset, build_dataset
from driftloop.training._evaluate import metrics_at, threshold_for, unweighted
from driftloop.training._gate import judge
from driftloop.training._persist import load_dataset, read_bytes, save_dataset, write_bytes
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
from driftloop.training._train import (
    Assessment,
    Fitted,
    TrainResult,
    assess,
    fit,
    register,
    train_model,
    xgboost_params,
)
from driftloop.training._worker import train_loop_per_worker

__all__ = [
    "Assessment",
    "Dataset",
    "Distribution",
    "Fitted",
    "GateSpec",
    "MetricsSpec",
    "ModelSpec",
    "Split",
    "TrainResult",
    "TrainerSpec",
    "TuneSpec",
    "assess",
    "build_dataset",
    "fit",
    "judge",
    "load_dataset",
    "load_model_spec",
    "metrics_at",
    "read_bytes",
    "register",
    "save_dataset",
    "threshold_for",
    "train_loop_per_worker",
    "train_model",
    "unweighted",
    "write_bytes",
    "xgboost_params",
]
