"""``deploy/apps/<model>/model.yaml``: what a model is trained on and how.

Every section forbids unknown keys, so a typo in the file is an error, not a default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator

from driftloop.settings import Settings

_STRICT = ConfigDict(extra="forbid", frozen=True)
_OWNED = ("seed", "nthread", "device", "scale_pos_weight", "random_state", "n_jobs")
"""XGBoost parameters the trainer sets; a spec may not."""


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
    cpus_per_worker: int = Field(
        1, ge=1, description="CPUs each Ray Train worker and Tune trial reserves (XGBoost nthread)"
    )
    use_gpu: Literal["auto", "on", "off"] = "auto"
    params: dict[str, JsonValue] = Field(default_factory=_default_params)
    num_boost_round: int = Field(300, ge=1)
    early_stopping_rounds: int = Field(30, ge=1)
    report_every: int = Field(
        25, ge=1, description="rounds between progress lines (sent only when someone listens)"
    )
    seed: int = 7

    @model_validator(mode="after")
    def _params_we_own(self) -> Self:
        clash = sorted(set(_OWNED) & set(self.params))
        if clash:
            raise ValueError(f"params {', '.join(clash)} are set by the trainer, not the spec")
        metric = self.params.get("eval_metric", "aucpr")
        if not isinstance(metric, str):
            raise ValueError("params.eval_metric must be one metric name (early stopping uses it)")
        return self


class Distribution(BaseModel):
    """One hyperparameter's search distribution: exactly one of the four keys."""

    model_config = _STRICT

    uniform: tuple[float, float] | None = None
    loguniform: tuple[float, float] | None = None
    randint: tuple[int, int] | None = Field(None, description="[low, high), as in Ray Tune")
    choice: list[JsonValue] | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        given = [k for k in ("uniform", "loguniform", "randint", "choice") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError("give exactly one of uniform, loguniform, randint, choice")
        for key in ("uniform", "loguniform", "randint"):
            bounds = getattr(self, key)
            if bounds is not None and not bounds[0] < bounds[1]:
                raise ValueError(f"{key} needs low < high, not {list(bounds)}")
        if self.loguniform is not None and self.loguniform[0] <= 0:
            raise ValueError("loguniform needs a positive lower bound")
        return self


class TuneSpec(BaseModel):
    """Parallel hyperparameter search with Ray Tune; the best trial by validation PR-AUC
    gives the parameters of the final model."""

    model_config = _STRICT

    enabled: bool = Field(False, description="`driftloop train --tune` turns it on too")
    num_samples: int = Field(4, ge=1)
    max_concurrent: int = Field(2, ge=1)
    space: dict[str, Distribution] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _searchable(self) -> Self:
        owned = set(_OWNED) & set(self.space)
        if owned:
            raise ValueError(f"space sets {', '.join(sorted(owned))}: set by the trainer")
        if self.enabled and not self.space:
            raise ValueError("tune.enabled needs a search space")
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
    min_post_change_positives: int = Field(
        15, ge=1, description="with a change point: fewer post-change holdout positives refuse"
    )
    max_post_change_recall_drop: float = Field(
        0.1, ge=0, description="challenger below champion recall at the threshold, post-change"
    )
    max_pr_auc_loss_with_change: float = Field(
        0.02,
        ge=0,
        description="with a change point: champion minus challenger PR-AUC, whole "
        "holdout (most of it the old regime, which the champion was trained for)",
    )


class ModelSpec(BaseModel):
    """One model's training specification."""

    model_config = _STRICT

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
    entity: str = "customer"
    feature_service: str = "fraud_v1"
    exclude_features: list[str] = Field(default_factory=list)
    label: str = "is_fraud"
    request: str = Field("Transaction", description="the event contract a scoring request carries")
    history: str | None = Field(None, description="default: <state_dir>/data/transactions.parquet")
    training_features: Literal["served", "offline"] = Field(
        "served",
        description="served: a transaction the endpoint scored trains on the features it was "
        "served with (the stream service's log of predictions), others on offline "
        "point-in-time features; offline: point-in-time features for every row",
    )
    split: Split = Field(default_factory=Split)
    trainer: TrainerSpec = Field(default_factory=TrainerSpec)
    tune: TuneSpec = Field(default_factory=TuneSpec)
    metrics: MetricsSpec = Field(default_factory=MetricsSpec)
    gate: GateSpec = Field(default_factory=GateSpec)

    @model_validator(mode="after")
    def _known_request(self) -> Self:
        from driftloop.events import CONTRACTS

        names = {contract.__name__ for contract in CONTRACTS}
        if self.request not in names:
            raise ValueError(f"request {self.request!r} is not one of {', '.join(sorted(names))}")
        return self

    def request_schema(self) -> dict[str, JsonValue]:
        """JSON Schema of the serving input: the request contract's."""
        from driftloop.events import CONTRACTS

        contract = next(c for c in CONTRACTS if c.__name__ == self.request)
        schema: dict[str, JsonValue] = contract.model_json_schema()
        return schema

    def labelled_uri(self, settings: Settings) -> str | None:
        """The stream service's labelled history (``<state_dir>/data/labelled``) when the
        default history is used and that directory holds files; None otherwise."""
        if self.history is not None:
            return None
        directory = settings.state_dir / "data" / "labelled"
        return str(directory) if any(directory.glob("*.parquet")) else None

    def served_uri(self, settings: Settings) -> str | None:
        """The stream service's served-features log (``<state_dir>/data/served``) when the
        default history is used and that directory holds files; None otherwise."""
        if self.history is not None:
            return None
        directory = settings.state_dir / "data" / "served"
        return str(directory) if any(directory.glob("*.parquet")) else None

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
