"""``deploy/apps/<model>/model.yaml``: what a model is trained on and how.

Every section forbids unknown keys, so a typo in the file is an error, not a default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator

from driftloop.settings import Settings

_STRICT = ConfigDict(extra="forbid", frozen=True)


class Split(BaseModel):
    """Fractions of the labelled rows by event time: train, then validation, then holdout
    (the most recent slice)."""

    model_config = _STRICT

    train: float = Field(0.7, gt=0, lt=1)
    validation: float = Field(0.15, gt=0, lt=1)
    holdout: float = Field(0.15, gt=0, lt=1)

    @model_validator(mode="after")
    def _sums_to_one(self) -> Self:
        total = self.train + self.validation + self.holdout
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"split fractions must sum to 1, not {total:g}")
        return self


def _default_params() -> dict[str, JsonValue]:
    return {
        "objective": "binary:logistic",
        "eval_metric": "aucpr",
        "tree_method": "hist",
        "max_depth": 5,
        "eta": 0.1,
        "subsample": 0.8,
        "colsample_bytree": 0.8,
    }


class TrainerSpec(BaseModel):
    model_config = _STRICT

    num_workers: int = Field(2, ge=1)
    use_gpu: Literal["auto", "on", "off"] = "auto"
    params: dict[str, JsonValue] = Field(default_factory=_default_params)
    num_boost_round: int = Field(300, ge=1)
    early_stopping_rounds: int = Field(30, ge=1)
    report_every: int = Field(25, ge=1, description="rounds between ray.train.report calls")
    seed: int = 7

    @model_validator(mode="after")
    def _params_we_own(self) -> Self:
        owned = {"seed", "nthread", "device", "scale_pos_weight", "random_state", "n_jobs"}
        clash = sorted(owned & set(self.params))
        if clash:
            raise ValueError(f"params {', '.join(clash)} are set by the trainer, not the spec")
        metric = self.params.get("eval_metric", "aucpr")
        if not isinstance(metric, str):
            raise ValueError("params.eval_metric must be one metric name (early stopping uses it)")
        return self


class MetricsSpec(BaseModel):
    model_config = _STRICT

    target_precision: float = Field(0.8, gt=0, le=1)


class GateSpec(BaseModel):
    """Thresholds of the challenger-vs-champion gate (its logic lives elsewhere)."""

    model_config = _STRICT

    min_pr_auc_lift: float = Field(0.0, description="challenger minus champion PR-AUC")
    min_pr_auc_over_baseline: float = Field(0.05, description="model minus baseline PR-AUC")
    max_brier_increase: float = Field(0.01, ge=0)
    min_holdout_positives: int = Field(10, ge=1)


class ModelSpec(BaseModel):
    """One model's training specification."""

    model_config = _STRICT

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
    entity: str = "customer"
    feature_service: str = "fraud_v1"
    exclude_features: list[str] = Field(default_factory=list)
    label: str = "is_fraud"
    history: str | None = Field(None, description="default: <state_dir>/data/transactions.parquet")
    split: Split = Field(default_factory=Split)
    trainer: TrainerSpec = Field(default_factory=TrainerSpec)
    metrics: MetricsSpec = Field(default_factory=MetricsSpec)
    gate: GateSpec = Field(default_factory=GateSpec)

    def history_uri(self, settings: Settings) -> str:
        """Where the labelled history is read from: a path or a filesystem URI."""
        if self.history is None:
            return str(settings.state_dir / "data" / "transactions.parquet")
        if "://" in self.history:
            return self.history
        return str(Path(self.history).expanduser().absolute())


def load_model_spec(path: str | Path) -> ModelSpec:
    """Read and validate a ``model.yaml``."""
    import yaml

    raw = yaml.safe_load(Path(path).read_text())
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    return ModelSpec.model_validate(raw)
