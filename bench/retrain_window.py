"""How much of the past a retraining run after a drift should train on, measured offline
with the loop's own features.

The demo's world (1,000 customers, 150 merchants, fraud 5 %, 8,000 payments a day, no
daily or weekly cycle) is simulated for ``--pre-days`` before a change and the hours after
it; its customer aggregates are computed as the stream computes them, its merchant
snapshots stop where the demo's backfill stops (the loop refreshes no merchant statistic
after that), and Feast's local store joins them. Then, with plain in-process XGBoost (the
spec's params, early stopping, the spec's split within regimes; no Ray):

- ``v1`` trains on the ``--v1-days`` before the stream starts (``--stream-before-h`` before
  the change), as the demo's first model does, and is judged on its own holdout (pre);
- each ``v2`` trains on a window of ``W`` days ending ``--post-h`` hours after the change
  (the labelled post-change traffic a run has when the trigger's evidence is in), split
  within regimes, ``wN``: post-change training rows weighted N times;
- v1 and every v2 are judged on the same ``--test-h`` hours that follow (the traffic v2
  serves), with each model's threshold chosen on its own validation rows, as the gate does.
  Keep them within the merchant snapshots' TTL (2 days from the last midnight before the
  stream starts): past it the offline store has no merchant statistic at all, while the
  online store, which enforces no TTL, goes on serving the last snapshot.

Shares are v2 post / v1 pre, the goal of ``bench/heal.py`` (PR-AUC >= 0.85, recall >= 0.8).

    python bench/retrain_window.py [--scenarios gift-card-fraud] [--seeds 1,2,3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import pandas as pd
from driftloop_demo._evidence import PR_AUC_SHARE, RECALL_SHARE

from bench._common import record
from driftloop.features import SCHEMAS, apply_repo, customer_aggregates, merchant_stats, write_batch
from driftloop.models import TrainingWindow, encode_features
from driftloop.settings import Settings
from driftloop.training import ModelSpec, build_dataset, load_model_spec, metrics_at, xgboost_params
from driftloop.training._dataset import LABEL, POST, Dataset

ROOT = Path(__file__).resolve().parents[1]
END = datetime(2026, 6, 1, tzinfo=UTC)
LABEL_DELAY = pd.Timedelta(minutes=70)
"""The demo's labels follow 10 wall seconds later: about 70 event-minutes."""


def simulate(
    seed: int, scenario: str, args: argparse.Namespace, tmp: Path
) -> tuple[Settings, datetime]:
    """The history under ``tmp``: its feature tables written and the repo applied; returns
    the settings and the change point."""
    from driftloop_simulator import (
        BackfillConfig,
        GeneratorConfig,
        WorldConfig,
        backfill,
        choose_scenario,
    )

    days = args.pre_days + (args.post_h + args.test_h) / 24
    config = BackfillConfig(
        world=WorldConfig(seed=seed, n_customers=1000, n_merchants=150),
        generator=GeneratorConfig(tx_per_day=8000, fraud_rate=0.05, weekly=False, daily=False),
        days=days, end=END,
    )  # fmt: skip
    after_s = args.pre_days * 86_400
    history = backfill(config, choose_scenario(scenario, after_s=after_s)).transactions
    history["label_timestamp"] = history["event_timestamp"] + LABEL_DELAY
    change = config.start + timedelta(seconds=after_s)
    stream_start = change - timedelta(hours=args.stream_before_h)
    settings = Settings(
        state_dir=tmp / "state", feature_env="local",
        feature_data_uri=str(tmp / "features"), model_store_uri=str(tmp / "models"),
    )  # fmt: skip
    (tmp / "state" / "data").mkdir(parents=True)
    history.to_parquet(tmp / "state" / "data" / "transactions.parquet", index=False)
    before = history[history["event_timestamp"] < pd.Timestamp(stream_start)]
    tables = {
        "customer_aggregates": customer_aggregates(history, END),
        "merchant_stats": merchant_stats(before, stream_start),
    }
    for name, frame in tables.items():
        write_batch(frame, f"{settings.feature_data}/{name}", "backfill", SCHEMAS[name])
    apply_repo(settings)
    return settings, change


class Model:
    """A booster fitted on a dataset's train split, early-stopped on its validation."""

    def __init__(self, spec: ModelSpec, dataset: Dataset, post_weight: float) -> None:
        import xgboost

        self.dataset, self.spec = dataset, spec
        names = dataset.names
        train, valid = dataset.splits["train"], dataset.splits["validation"]
        weight = np.ones(len(train))
        if POST in train.columns:
            weight = np.where(train[POST].to_numpy() == 1, post_weight, 1.0)
        params = xgboost_params(spec, dataset, False, nthread=2)
        self.booster = xgboost.train(
            params, xgboost.DMatrix(train[names], label=train[LABEL], weight=weight),
            num_boost_round=spec.trainer.num_boost_round,
            evals=[(xgboost.DMatrix(valid[names], label=valid[LABEL]), "validation")],
            early_stopping_rounds=spec.trainer.early_stopping_rounds, verbose_eval=False,
        )  # fmt: skip
        self.validation = (valid[LABEL].to_numpy(), self.score_encoded(valid))

    def score_encoded(self, frame: pd.DataFrame) -> np.ndarray:
        import xgboost

        matrix = xgboost.DMatrix(frame[self.dataset.names])
        scores: np.ndarray = self.booster.predict(
            matrix, iteration_range=(0, self.booster.best_iteration + 1)
        )
        return scores

    def judge(self, raw: pd.DataFrame, y: np.ndarray) -> dict[str, float]:
        encoded = encode_features(raw, self.dataset.feature_spec())
        scores = self.score_encoded(encoded)
        return metrics_at(y, scores, self.spec.metrics.target_precision, chosen_on=self.validation)


def window(end: datetime, days: float) -> TrainingWindow:
    return TrainingWindow(start=end - timedelta(days=days), end=end)


SPLITS = ("train", "validation", "holdout")


def run(
    spec: ModelSpec, seed: int, scenario: str, args: argparse.Namespace
) -> list[dict[str, Any]]:
    target = spec.metrics.target_precision
    with tempfile.TemporaryDirectory(prefix="bench-retrain-window-") as directory:
        settings, change = simulate(seed, scenario, args, Path(directory))
        stream_start = change - timedelta(hours=args.stream_before_h)
        served_from = change + timedelta(hours=args.post_h)
        # The traffic v2 serves: every split of a dataset over it, unencoded, in time order.
        until = served_from + timedelta(hours=args.test_h)
        test = build_dataset(spec, settings, TrainingWindow(start=served_from, end=until))
        raw = pd.concat([test.raw[s] for s in SPLITS], ignore_index=True)
        y = np.concatenate([test.splits[s][LABEL].to_numpy() for s in SPLITS])
        v1 = Model(spec, build_dataset(spec, settings, window(stream_start, args.v1_days)), 1.0)
        hold = v1.dataset.splits["holdout"]
        pre = metrics_at(
            hold[LABEL].to_numpy(), v1.score_encoded(hold), target, chosen_on=v1.validation
        )
        before = (pre["pr_auc"], pre["recall_at_threshold"])
        rows = [row(scenario, seed, "v1", v1.judge(raw, y), before, v1.dataset)]
        rows[0] |= {"pre_pr_auc": before[0], "pre_recall": before[1]}
        for days in (float(d) for d in args.windows.split(",")):
            dataset = build_dataset(spec, settings, window(served_from, days), change)
            for factor in (float(w) for w in args.weights.split(",")):
                model = Model(spec, dataset, factor)
                name = f"v2 {days:g}d w{factor:g}"
                rows.append(row(scenario, seed, name, model.judge(raw, y), before, dataset))
        return rows


def row(
    scenario: str, seed: int, model: str, got: dict[str, float], before: tuple[float, float],
    dataset: Dataset,
) -> dict[str, Any]:  # fmt: skip
    """One table row: a model's figures on the served traffic, as shares of v1's before."""
    train = dataset.splits["train"]
    post = train[POST].to_numpy() == 1 if POST in train.columns else np.zeros(len(train), bool)
    return {
        "scenario": scenario, "seed": seed, "model": model,
        "post_pr_auc": got["pr_auc"], "post_recall": got["recall_at_threshold"],
        "pr_auc_share": got["pr_auc"] / before[0],
        "recall_share": got["recall_at_threshold"] / max(before[1], 1e-9),
        "train_rows": len(train),
        "train_post_positives": int(train[LABEL].to_numpy()[post].sum()),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--scenarios", default="crypto-cash-out,gift-card-fraud,online-takeover")
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--pre-days", type=float, default=10.0)
    parser.add_argument("--stream-before-h", type=float, default=7.0, help="stream start → change")
    parser.add_argument("--v1-days", type=float, default=3.0)
    parser.add_argument("--post-h", type=float, default=7.0, help="labelled hours after the change")
    parser.add_argument("--test-h", type=float, default=14.0, help="see the TTL above")
    parser.add_argument("--windows", default="0.5,1,3", help="v2 training windows, days")
    parser.add_argument("--weights", default="1,3", help="post-change training row weights")
    args = parser.parse_args()
    spec = load_model_spec(ROOT / "deploy" / "apps" / "fraud" / "model.yaml")
    rows: list[dict[str, Any]] = []
    for scenario in args.scenarios.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            rows += run(spec, seed, scenario, args)
            print(f"{scenario} seed {seed}: done", flush=True)
    frame = pd.DataFrame(rows)
    pd.set_option("display.width", 200)
    print(frame.round(3).to_string(index=False))
    by = frame.groupby(["scenario", "model"], sort=False)
    mean = by.mean(numeric_only=True).drop(columns="seed")
    print("\nmean over seeds\n" + mean.round(3).to_string())
    healed = (frame["pr_auc_share"] >= PR_AUC_SHARE) & (frame["recall_share"] >= RECALL_SHARE)
    healed = healed.groupby([frame["scenario"], frame["model"]], sort=False).sum()
    print(f"\nseeds healed (shares >= {PR_AUC_SHARE} / {RECALL_SHARE})\n" + healed.to_string())
    result: dict[str, Any] = {}
    for label, figures in mean.iterrows():
        scenario, model = str(label[0]), str(label[1])  # type: ignore[index]
        if model != "v1":
            key = f"{scenario}_{model.replace(' ', '_')}"
            result[f"{key}_pr_auc_share"] = float(figures["pr_auc_share"])
            result[f"{key}_recall_share"] = float(figures["recall_share"])
    record("retrain_window", result)


if __name__ == "__main__":
    main()
