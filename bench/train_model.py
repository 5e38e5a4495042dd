"""``train_model`` end to end on the integration tests' simulated history (8 days, 300
customers, 2 000 payments a day; tests/integration/history_support.py) with the tests'
champion spec (120 rounds, 2 Ray Train workers), against plain single-process XGBoost
fitting the same rows with the same parameters, in the same run.

These are the figures tests/integration/test_training.py used to print and not assert:
the model's and the baseline's metrics, the row counts, the run's wall time and its
Ray Train time. The ratios say what the pipeline around the booster costs on a tiny data
set: Feast point-in-time join, Ray Train start-up, evaluation, reference profiles, store.

    python bench/train_model.py [--workers 2] [--rounds 120]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import record
from bench.training import plain
from driftloop.settings import Settings
from driftloop.training import build_dataset, load_model_spec, train_model, xgboost_params
from tests.integration.history_support import ROOT, WINDOW, simulated_history


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=120)
    args = parser.parse_args()
    spec = load_model_spec(ROOT / "deploy" / "apps" / "fraud" / "model.yaml")
    trainer = spec.trainer.model_copy(
        update={"num_boost_round": args.rounds, "report_every": max(args.rounds // 3, 1)}
    )
    spec = spec.model_copy(update={"trainer": trainer})
    with tempfile.TemporaryDirectory(prefix="bench-train-model-") as tmp:
        settings = simulated_history(Settings(), Path(tmp), git_repo=str(ROOT))
        result = train_model(spec, WINDOW, settings, num_workers=args.workers)
        dataset = build_dataset(spec, settings, WINDOW)
        base = plain(dataset, xgboost_params(spec, dataset, False), args.rounds, 1)
    record(
        "train_model",
        {
            "workers": args.workers,
            "rounds": args.rounds,
            **{f"rows_{k}": v for k, v in result.rows.model_dump().items()},
            "model_pr_auc": result.metrics["pr_auc"],
            "model_roc_auc": result.metrics["roc_auc"],
            "baseline_pr_auc": result.baseline_metrics["pr_auc"],
            "prior": result.baseline_metrics["prior"],
            "train_model_s": result.duration_s,
            "ray_train_s": result.train_s,
            "plain_xgboost_1thread_s": base,
            "ratio_train_model_over_plain": result.duration_s / base,
            "ratio_ray_train_over_plain": result.train_s / base,
        },
    )


if __name__ == "__main__":
    main()
