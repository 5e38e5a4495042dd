"""What each Ray Train worker runs: a plain function of its config.

Rows reach every worker whole and each keeps ``row % world_size == rank``, sorted by row:
which rows a worker trains on then never depends on how Ray Data scheduled its blocks,
so the same data, seed and worker count give the same booster bytes.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    import xgboost

MODEL_FILE = "model.json"


def _shard(name: str, rank: int, world: int) -> pd.DataFrame:
    import ray.train

    from driftloop.training._dataset import ROW

    frame = ray.train.get_dataset_shard(name).materialize().to_pandas()
    mine: pd.DataFrame = frame[frame[ROW] % world == rank]
    return mine.sort_values(ROW, kind="stable").reset_index(drop=True)


def _report_callback(every: int, metric: str) -> xgboost.callback.TrainingCallback:
    """Report the validation metric every ``every`` rounds (a report costs about a second)
    and, once training ends, the final booster as a checkpoint from rank 0."""
    import ray.train
    import xgboost

    class ReportEvery(xgboost.callback.TrainingCallback):
        def __init__(self) -> None:
            self.last: dict[str, float] = {}

        def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
            history = evals_log.get("validation", {}).get(metric, [])
            if history:
                self.last = {f"validation-{metric}": float(history[-1]), "round": epoch + 1}
            if (epoch + 1) % every == 0:
                ray.train.report(dict(self.last))
            return False

        def after_training(self, model: Any) -> Any:
            metrics = {**self.last, "best_iteration": int(model.best_iteration)}
            metrics["num_boosted_rounds"] = int(model.num_boosted_rounds())
            if ray.train.get_context().get_world_rank() == 0:
                with tempfile.TemporaryDirectory() as directory:
                    model.save_model(str(Path(directory) / MODEL_FILE))
                    checkpoint = ray.train.Checkpoint.from_directory(directory)
                    ray.train.report(metrics, checkpoint=checkpoint)
            else:
                ray.train.report(metrics)
            return model

    return ReportEvery()


def train_loop_per_worker(config: dict[str, Any]) -> None:
    """Train one XGBoost booster across the workers of a Ray Train run.

    ``config``: ``params`` (complete XGBoost params), ``features`` (names, in order),
    ``num_boost_round``, ``early_stopping_rounds``, ``report_every``."""
    import ray.train
    import xgboost

    from driftloop.training._dataset import LABEL

    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    names: list[str] = config["features"]
    params: dict[str, Any] = config["params"]
    train, validation = _shard("train", rank, world), _shard("validation", rank, world)
    dtrain = xgboost.DMatrix(train[names], label=train[LABEL], feature_names=names)
    dvalid = xgboost.DMatrix(validation[names], label=validation[LABEL], feature_names=names)
    metric = str(params["eval_metric"])
    callbacks = [
        xgboost.callback.EarlyStopping(
            rounds=config["early_stopping_rounds"],
            metric_name=metric,
            data_name="validation",
            maximize=metric in {"aucpr", "auc", "map", "ndcg", "pre"},
            save_best=True,
        ),
        _report_callback(config["report_every"], metric),
    ]
    xgboost.train(
        params,
        dtrain,
        num_boost_round=config["num_boost_round"],
        evals=[(dvalid, "validation")],
        callbacks=callbacks,
        verbose_eval=False,
    )
