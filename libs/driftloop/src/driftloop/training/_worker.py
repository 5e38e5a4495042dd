"""What each Ray Train worker runs: a plain function of its config.

A set built in this process (the local offline store) reaches every worker whole, as
object references to the driver's frames (no Ray Data: its executor cost seconds a run
on every worker and in the driver, for rows that fit in memory anyway), and each worker
keeps ``row % world_size == rank``, sorted by row. A set built on Ray (``_sharded``)
never comes to the driver: its parquet parts, one per partition, reach the trainer as
Ray Datasets, one per worker (:func:`rank_datasets`: worker ``r`` reads the parts ``p``
with ``p % world_size == r``), and each worker sorts its rows by row. Either way which
rows a worker trains on never depends on scheduling, so the same data, seed and worker
count give the same booster bytes; with one worker both give the same booster.

A run calls ``ray.train.report`` once, at the end, with the booster as its checkpoint:
each report waits for the controller's next poll (about a second), so boosting progress
goes to the driver's queue instead, from rank 0, and only when the driver listens.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    import xgboost

MODEL_FILE = "model.json"


def _shard(config: dict[str, Any], split: str, rank: int, world: int) -> pd.DataFrame:
    """This worker's rows of ``split``, sorted by row: its dataset shard when the set is
    sharded, else its rows of the frame behind the object reference in ``config``."""
    import ray
    import ray.train

    from driftloop.training._dataset import ROW

    if config[split] is None:
        shard = ray.train.get_dataset_shard(f"{split}_{rank}")  # its own parts (_ingest)
        blocks = list(shard.iter_batches(batch_size=None, batch_format="pandas"))
        frame: pd.DataFrame = pd.concat(blocks, ignore_index=True)
        return frame.sort_values(ROW, kind="stable").reset_index(drop=True)
    whole: pd.DataFrame = ray.get(config[split])
    mine = whole[whole[ROW] % world == rank]
    return mine.sort_values(ROW, kind="stable").reset_index(drop=True)


def _report_callback(every: int, metric: str, queue: Any) -> xgboost.callback.TrainingCallback:
    """Put the validation metric on ``queue`` every ``every`` rounds (if there is a queue);
    once training ends, report the final booster as a checkpoint from rank 0."""
    import ray.train
    import xgboost

    class ReportEvery(xgboost.callback.TrainingCallback):
        def __init__(self) -> None:
            self.last: dict[str, float] = {}

        def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
            history = evals_log.get("validation", {}).get(metric, [])
            if history:
                self.last = {f"validation-{metric}": float(history[-1]), "round": epoch + 1}
            if queue is not None and (epoch + 1) % every == 0:
                queue.put_nowait(dict(self.last))
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
    ``train`` and ``validation`` (object references to the encoded frames, all rows; None
    when the worker reads its dataset shards instead),
    ``num_boost_round``, ``early_stopping_rounds``, ``report_every``, and ``progress``
    (a ``ray.util.queue.Queue`` for rank 0's progress every ``report_every`` rounds, or
    None)."""
    import ray.train
    import xgboost

    from driftloop.training._dataset import LABEL

    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    names: list[str] = config["features"]
    params: dict[str, Any] = config["params"]
    train = _shard(config, "train", rank, world)
    validation = _shard(config, "validation", rank, world)
    dtrain = xgboost.DMatrix(train[names], label=train[LABEL], feature_names=names)
    dvalid = xgboost.DMatrix(validation[names], label=validation[LABEL], feature_names=names)
    metric = str(params["eval_metric"])
    queue = config["progress"] if rank == 0 else None
    callbacks = [
        xgboost.callback.EarlyStopping(
            rounds=config["early_stopping_rounds"],
            metric_name=metric,
            data_name="validation",
            maximize=metric in {"aucpr", "auc", "map", "ndcg", "pre"},
            save_best=True,
        ),
        _report_callback(config["report_every"], metric, queue),
    ]
    xgboost.train(
        params,
        dtrain,
        num_boost_round=config["num_boost_round"],
        evals=[(dvalid, "validation")],
        callbacks=callbacks,
        verbose_eval=False,
    )
