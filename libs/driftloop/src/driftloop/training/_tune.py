"""Parallel hyperparameter search with Ray Tune over the spec's search space.

Each trial fits XGBoost in one process on the train split, with early stopping on the
validation split, and reports the validation PR-AUC once; trials run in parallel on the
cluster (``max_concurrent``, one CPU each). Trials deliberately do not start a Ray Train
job each: its fixed cost here is about 30 s, against about a second for a trial on a few
thousand rows. The winning parameters then train the final model with Ray Train.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import JsonValue

from driftloop.settings import Settings
from driftloop.training._dataset import LABEL, Dataset
from driftloop.training._spec import Distribution, ModelSpec

if TYPE_CHECKING:
    from driftloop.training._progress import Progress

METRIC = "validation_pr_auc"


@dataclass(frozen=True)
class TuneOutcome:
    params: dict[str, Any]
    summary: dict[str, JsonValue]


def _domain(distribution: Distribution) -> Any:
    from ray import tune

    if distribution.uniform is not None:
        return tune.uniform(*distribution.uniform)
    if distribution.loguniform is not None:
        return tune.loguniform(*distribution.loguniform)
    if distribution.randint is not None:
        return tune.randint(*distribution.randint)
    assert distribution.choice is not None
    return tune.choice(list(distribution.choice))


def _trial(config: dict[str, Any], *, data: dict[str, Any]) -> None:
    """One trial: fit on train, stop early on validation, report validation PR-AUC."""
    import xgboost
    from ray import tune
    from sklearn.metrics import average_precision_score  # type: ignore[import-untyped]

    names: list[str] = data["names"]
    train, validation = data["train"], data["validation"]
    params = {**data["params"], **config}
    dtrain = xgboost.DMatrix(train[names], label=train[LABEL], feature_names=names)
    dvalid = xgboost.DMatrix(validation[names], label=validation[LABEL], feature_names=names)
    booster = xgboost.train(
        params,
        dtrain,
        num_boost_round=data["num_boost_round"],
        evals=[(dvalid, "validation")],
        early_stopping_rounds=data["early_stopping_rounds"],
        verbose_eval=False,
    )
    scores = booster.predict(dvalid, iteration_range=(0, booster.best_iteration + 1))
    tune.report(
        {
            METRIC: float(average_precision_score(validation[LABEL], scores)),
            "best_iteration": int(booster.best_iteration),
        }
    )


def tune_params(
    spec: ModelSpec,
    dataset: Dataset,
    params: dict[str, Any],
    settings: Settings,
    use_gpu: bool,
    progress: Progress | None = None,
) -> TuneOutcome:
    """Search ``spec.tune.space`` around ``params``; the best trial's parameters merged
    into ``params``, and a summary of every trial for the lineage."""
    from ray import tune

    search = spec.tune
    if not search.space:
        raise ValueError(f"{spec.name}: tune has no search space")
    data = {
        "names": dataset.names,
        "train": dataset.splits["train"],
        "validation": dataset.splits["validation"],
        "params": params,
        "num_boost_round": spec.trainer.num_boost_round,
        "early_stopping_rounds": spec.trainer.early_stopping_rounds,
    }
    cpus = float(params.get("nthread", 1))
    resources: dict[str, float] = {"CPU": cpus, **({"GPU": 1.0} if use_gpu else {})}
    trainable = tune.with_resources(tune.with_parameters(_trial, data=data), resources)
    tuner = tune.Tuner(
        trainable,
        param_space={name: _domain(d) for name, d in search.space.items()},
        tune_config=tune.TuneConfig(
            metric=METRIC,
            mode="max",
            num_samples=search.num_samples,
            max_concurrent_trials=search.max_concurrent,
            search_alg=tune.search.BasicVariantGenerator(random_state=spec.trainer.seed),
        ),
        run_config=tune.RunConfig(
            name=f"{spec.name}-tune",
            storage_path=str(settings.state_dir / "ray-tune"),
            verbose=0,
        ),
    )
    if progress is not None:
        progress(f"tuning: {search.num_samples} trials, {search.max_concurrent} at a time")
    grid = tuner.fit()
    trials: list[JsonValue] = []
    for i in range(len(grid)):
        result = grid[i]
        if result.error is not None or not result.metrics:
            trials.append({"config": _plain(result.config), "error": str(result.error)})
            continue
        trials.append({"config": _plain(result.config), METRIC: result.metrics[METRIC]})
    best = grid.get_best_result(metric=METRIC, mode="max")
    if best.metrics is None or best.config is None:
        raise RuntimeError(f"{spec.name}: no tuning trial finished; see {grid.experiment_path}")
    chosen = _plain(best.config)
    if progress is not None:
        progress(f"best trial: {METRIC} {best.metrics[METRIC]:.4f} with {chosen}")
    summary: dict[str, JsonValue] = {
        "metric": METRIC,
        "best": chosen,
        "best_score": float(best.metrics[METRIC]),
        "trials": trials,
    }
    return TuneOutcome(params={**params, **chosen}, summary=summary)


def _plain(config: dict[str, Any] | None) -> dict[str, JsonValue]:
    """Tune's sampled values as JSON values (numpy scalars become Python numbers)."""
    out: dict[str, JsonValue] = {}
    for key, value in (config or {}).items():
        out[key] = value.item() if hasattr(value, "item") else value
    return out
