"""Ray Train (XGBoostTrainer, 1 and 2 workers) against plain single-process XGBoost on the
same rows and parameters, at about 100 k and 1 M rows.

The rows are synthetic (scikit-learn's make_classification, 3 % positives, the fraud
model's 18 inputs) so that 1 M rows need no hour-long backfill; the trainer code path is
driftloop's own (`_fit`: Ray Data in, the per-rank split, sparse reports, the final
checkpoint). Early stopping is off so every run boosts the same number of rounds.
The fixed overhead is measured on 1 000 rows for the same number of rounds, 1 and 2
workers: driftloop's ``fit`` (the train step of ``train_model``) against a bare
``XGBoostTrainer`` in the same run — the least Ray Train needs to hand a booster back:
rows as object references, no progress, one ``ray.train.report`` with the checkpoint at
the end. The first Ray Train run of the process (cold: Ray Train's imports) is a bare one
and is recorded apart; then ours and the bare one alternate, ``--repeat`` times each, and
the ratio is of the medians (goal: at most 1.5). ``ray_train_fixed_overhead_*`` is ours
less plain XGBoost. Then, at each ``--rows`` size: 1 worker with 1 CPU, 2 workers with 1
CPU each, 1 worker with 2 CPUs (XGBoost's nthread 2, ``cpus_per_worker`` in the spec),
and 2 workers reading the rows as a set built on Ray leaves them (``2w_sharded``: four
parquet parts, each worker its own two, read as Ray Datasets); the goal's ratio is
``<rows>_ratio_ray_2w_over_plain_2threads`` (at most 2 at 1 M rows).
``1k_2w_ratio_poll_stack_over_2s``: a bare 2-worker run with the stack's controller poll
(0.25 s) over one with Ray Train's default (2 s), alternating in the same run.

    python bench/training.py [--rows 100000,1000000 | --rows ''] [--rounds 100] [--repeat 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import pandas as pd

from bench._common import record
from driftloop.models import Feature
from driftloop.settings import Settings
from driftloop.training import ModelSpec, fit, load_model_spec, xgboost_params
from driftloop.training._dataset import LABEL, ROW, Dataset
from driftloop.training._train import _connect, _fit

ROOT = Path(__file__).resolve().parents[1]
FEATURES = 18


def synthetic(rows: int, seed: int) -> Dataset:
    from sklearn.datasets import make_classification  # type: ignore[import-untyped]

    x, y = make_classification(
        n_samples=rows, n_features=FEATURES, n_informative=10, n_redundant=4,
        weights=[0.97], flip_y=0.01, random_state=seed,
    )  # fmt: skip
    names = [f"f{i:02d}" for i in range(FEATURES)]
    frame = pd.DataFrame(x.astype("float32"), columns=names)
    frame[LABEL] = y.astype("int32")
    cut = int(rows * 0.85)
    splits = {}
    for name, part in {
        "train": frame[:cut],
        "validation": frame[cut:],
        "holdout": frame[cut:],
    }.items():
        part = part.reset_index(drop=True)
        part.insert(0, ROW, np.arange(len(part), dtype=np.int64))
        splits[name] = part
    return Dataset([Feature(name=n, type="float") for n in names], {}, splits, "synthetic")


def sharded(dataset: Dataset, directory: Path, parts: int = 4) -> Dataset:
    """``dataset`` as a set built on Ray leaves it: train and validation as ``parts``
    parquet parts (row ``r`` in part ``r % parts``), which the workers read themselves."""
    from dataclasses import replace

    shards: dict[str, list[str]] = {}
    for name in ("train", "validation"):
        frame = dataset.splits[name]
        shards[name] = []
        for p in range(parts):
            uri = str(directory / name / f"part-{p:05d}.parquet")
            Path(uri).parent.mkdir(parents=True, exist_ok=True)
            frame[frame[ROW] % parts == p].to_parquet(uri, index=False)
            shards[name].append(uri)
    totals = {name: {"rows": len(part), "positives": int(part[LABEL].sum())}
              for name, part in dataset.splits.items()}  # fmt: skip
    return replace(dataset, shards=shards, totals=totals)


def plain(dataset: Dataset, params: dict[str, object], rounds: int, nthread: int) -> float:
    import xgboost

    names = dataset.names
    started = time.perf_counter()
    train, valid = dataset.splits["train"], dataset.splits["validation"]
    dtrain = xgboost.DMatrix(train[names], label=train[LABEL], feature_names=names)
    dvalid = xgboost.DMatrix(valid[names], label=valid[LABEL], feature_names=names)
    xgboost.train({**params, "nthread": nthread}, dtrain, num_boost_round=rounds,
                  evals=[(dvalid, "validation")], verbose_eval=False)  # fmt: skip
    return time.perf_counter() - started


def _bare_loop(config: dict[str, Any]) -> None:
    import ray
    import ray.train
    import xgboost

    names = config["names"]
    train, valid = ray.get(config["train"]), ray.get(config["validation"])
    dtrain = xgboost.DMatrix(train[names], label=train[LABEL])
    dvalid = xgboost.DMatrix(valid[names], label=valid[LABEL])
    booster = xgboost.train(config["params"], dtrain, num_boost_round=config["rounds"],
                            evals=[(dvalid, "validation")], verbose_eval=False)  # fmt: skip
    with tempfile.TemporaryDirectory() as directory:
        booster.save_model(f"{directory}/model.json")
        ray.train.report({}, checkpoint=ray.train.Checkpoint.from_directory(directory))


def bare(dataset: Dataset, params: dict[str, object], rounds: int, workers: int,
         settings: Settings) -> float:  # fmt: skip
    """Seconds of a bare ``XGBoostTrainer`` run on ``dataset`` (see the module's doc)."""
    import ray
    import ray.train
    from ray.train.xgboost import XGBoostTrainer

    started = time.perf_counter()
    config = {"names": dataset.names, "params": params, "rounds": rounds}
    config |= {name: ray.put(dataset.splits[name]) for name in ("train", "validation")}
    XGBoostTrainer(
        _bare_loop,
        train_loop_config=config,
        scaling_config=ray.train.ScalingConfig(num_workers=workers),
        run_config=ray.train.RunConfig(
            name=f"bench-bare-{uuid.uuid4().hex[:12]}",
            storage_path=str(settings.state_dir / "ray-train"),
        ),
    ).fit()
    return time.perf_counter() - started


def fixed_overhead(spec: ModelSpec, settings: Settings, repeat: int) -> dict[str, float]:
    """Ours (``fit``) against a bare XGBoostTrainer on the same 1 000 rows (module doc)."""
    tiny = synthetic(1_000, seed=1)
    params = xgboost_params(spec, tiny, False)
    rounds = spec.trainer.num_boost_round
    tiny_plain = plain(tiny, params, rounds, 1)
    result = {"plain_1k_s": tiny_plain, "bare_cold_s": bare(tiny, params, rounds, 1, settings)}
    for workers in (1, 2):
        ours, floor = [], []
        for _ in range(repeat):
            started = time.perf_counter()
            fit(spec, tiny, settings, num_workers=workers, use_gpu=False, tune=False)
            ours.append(time.perf_counter() - started)
            floor.append(bare(tiny, params, rounds, workers, settings))
        key = f"1k_{workers}w"
        result[f"{key}_ours_s"] = statistics.median(ours)
        result[f"{key}_bare_xgboost_trainer_s"] = statistics.median(floor)
        result[f"{key}_ratio_ours_over_bare"] = statistics.median(ours) / statistics.median(floor)
        result[f"ray_train_fixed_overhead_{workers}w_s"] = statistics.median(ours) - tiny_plain
        print(f"1k, {workers} worker(s): done", flush=True)
    return result


POLL = "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"


def controller_poll(spec: ModelSpec, settings: Settings, repeat: int) -> dict[str, float]:
    """Bare runs on 1 000 rows with Ray Train's default poll of its workers (2 s, set in
    this driver, which Ray Train hands to its controller) against the stack's (`make up`
    starts Ray with 0.25 s, which every Ray process inherits), alternating."""
    tiny = synthetic(1_000, seed=1)
    params = xgboost_params(spec, tiny, False)
    rounds = spec.trainer.num_boost_round
    default, stack = [], []
    saved = os.environ.pop(POLL, None)
    try:
        for _ in range(repeat):
            os.environ[POLL] = "2.0"
            default.append(bare(tiny, params, rounds, 2, settings))
            os.environ.pop(POLL)
            stack.append(bare(tiny, params, rounds, 2, settings))
    finally:
        os.environ.pop(POLL, None)
        if saved is not None:
            os.environ[POLL] = saved
    print("1k, 2 workers, controller poll: done", flush=True)
    return {
        "1k_2w_poll_2s_s": statistics.median(default),
        "1k_2w_poll_stack_s": statistics.median(stack),
        "1k_2w_ratio_poll_stack_over_2s": statistics.median(stack) / statistics.median(default),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", default="100000,1000000")
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    settings = Settings()
    spec = load_model_spec(ROOT / "deploy" / "apps" / "fraud" / "model.yaml")
    trainer = spec.trainer.model_copy(
        update={
            "num_boost_round": args.rounds,
            "early_stopping_rounds": args.rounds,
            "report_every": max(args.rounds // 4, 1),
        }
    )
    spec = spec.model_copy(update={"trainer": trainer})
    _connect(settings)
    result: dict[str, object] = {"rounds": args.rounds, "features": FEATURES}

    result |= fixed_overhead(spec, settings, args.repeat)
    result |= controller_poll(spec, settings, args.repeat)

    for rows in (int(r) for r in args.rows.split(",") if r):
        dataset = synthetic(rows, seed=2)
        params = xgboost_params(spec, dataset, False)
        key = f"{rows // 1000}k"
        base = plain(dataset, params, args.rounds, 1)
        result[f"{key}_plain_1thread_s"] = base
        result[f"{key}_plain_2threads_s"] = plain(dataset, params, args.rounds, 2)
        two_threads = xgboost_params(spec, dataset, False, nthread=2)
        with tempfile.TemporaryDirectory() as directory:
            parts = sharded(dataset, Path(directory))
            for name, workers, used, data in (
                ("1w", 1, params, dataset), ("2w", 2, params, dataset),
                ("1w_2cpu", 1, two_threads, dataset), ("2w_sharded", 2, params, parts),
            ):  # fmt: skip
                started = time.perf_counter()
                _fit(spec, data, used, settings, workers, False)
                took = time.perf_counter() - started
                result[f"{key}_ray_{name}_s"] = took
                result[f"{key}_ratio_ray_{name}_over_plain"] = took / base
        two = float(result[f"{key}_plain_2threads_s"])  # type: ignore[arg-type]
        for name in ("2w", "2w_sharded"):
            ratio = float(result[f"{key}_ray_{name}_s"]) / two  # type: ignore[arg-type]
            result[f"{key}_ratio_ray_{name}_over_plain_2threads"] = ratio
        print(f"{key}: done", flush=True)
    record("training", result)


if __name__ == "__main__":
    main()
