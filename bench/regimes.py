"""How a retraining run should split and weight its rows after a drift, measured.

A simulated history (``driftloop_simulator``, scenario ``crypto-cash-out`` by default)
holds ``--days`` days of payments whose last ``--post-days`` are the new regime; the run
trains on all of them and is judged on the following ``--test-days`` (all new regime:
the traffic a promoted version will serve). Strategies, each fitted with plain in-process
XGBoost (the spec's params, early stopping and scale_pos_weight; no Ray):

- ``time``: today's split by event time (the new regime lands in validation and holdout);
- ``within``: :func:`driftloop.training._dataset.split_within_regimes` (each regime split
  by time with the spec's fractions);
- ``within+wN``: the same, post-change training rows weighted ``N`` times;
- ``within+balanced``: post-change training rows weighted so each regime weighs the same.

``champion`` is the model trained on the pre-change rows only (what serves when the
drift is raised). Features are the raw simulated columns (amount, categories as codes of
the training vocabulary, unseen -1; foreign card; hour), not Feast's: the question is
where the new regime's rows go, which does not depend on the feature set. Figures are the
mean over seeds; ratios are against ``time``. Post-change PR-AUC and recall at the
operating threshold (chosen on each strategy's own validation rows, as the gate does) are
on the test days; ``pre_pr_auc`` is on the last pre-change day, held out of training.

    python bench/regimes.py [--seeds 1,2,3] [--scenario crypto-cash-out]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import pandas as pd

from driftloop.training import ModelSpec, load_model_spec, metrics_at
from driftloop.training._dataset import LABEL, POST, TS, split_within_regimes

ROOT = Path(__file__).resolve().parents[1]
CATEGORIES = ("currency", "merchant_category", "channel", "country", "card_country")
NUMBERS = ("amount", "foreign", "hour", "has_device")
END = datetime(2026, 6, 1, tzinfo=UTC)


@dataclass(frozen=True)
class World:
    """One simulated history: the training window, the change point, the test days."""

    window: pd.DataFrame
    change_point: datetime
    pre_test: pd.DataFrame
    test: pd.DataFrame


def simulate(seed: int, scenario: str, days: int, post_days: float, test_days: int) -> World:
    from driftloop_simulator import (
        BackfillConfig,
        GeneratorConfig,
        WorldConfig,
        backfill,
        choose_scenario,
    )

    total = days + test_days + 1  # one pre-change day is held out to judge the old regime
    config = BackfillConfig(
        world=WorldConfig(seed=seed), generator=GeneratorConfig(tx_per_day=6000),
        days=total, end=END,
    )  # fmt: skip
    after = (total - test_days - post_days) * 86_400
    history = backfill(config, choose_scenario(scenario, after_s=after)).transactions
    history[LABEL] = history["is_fraud"].astype("int32")
    history["foreign"] = (history["country"] != history["card_country"]).astype("float32")
    history["hour"] = history[TS].dt.hour.astype("float32")
    history["has_device"] = history["device_id"].notna().astype("float32")
    change = config.start + timedelta(seconds=after)
    test_from = END - timedelta(days=test_days)
    pre_day = change - timedelta(days=1)
    ts = history[TS]
    window = history[(ts < pre_day) | ((ts >= change) & (ts < test_from))]
    return World(
        window.reset_index(drop=True), change,
        history[(ts >= pre_day) & (ts < change)].reset_index(drop=True),
        history[ts >= test_from].reset_index(drop=True),
    )  # fmt: skip


def encode(frame: pd.DataFrame, vocab: dict[str, dict[str, int]]) -> pd.DataFrame:
    out = {c: frame[c].map(vocab[c]).fillna(-1).astype("float32") for c in CATEGORIES}
    out |= {c: frame[c].astype("float32") for c in NUMBERS}
    return pd.DataFrame(out)


def fit(
    spec: ModelSpec, train: pd.DataFrame, validation: pd.DataFrame, weight: np.ndarray, seed: int
) -> Callable[[pd.DataFrame], np.ndarray]:
    import xgboost

    vocab = {
        c: {v: i for i, v in enumerate(sorted(train[c].dropna().unique()))} for c in CATEGORIES
    }
    y = train[LABEL].to_numpy()
    params: dict[str, Any] = {
        **spec.trainer.params, "seed": seed, "nthread": 4,
        "scale_pos_weight": (len(y) - y.sum()) / max(int(y.sum()), 1),
    }  # fmt: skip
    dtrain = xgboost.DMatrix(encode(train, vocab), label=y, weight=weight)
    dvalid = xgboost.DMatrix(encode(validation, vocab), label=validation[LABEL].to_numpy())
    booster = xgboost.train(
        params, dtrain, num_boost_round=spec.trainer.num_boost_round,
        evals=[(dvalid, "validation")], verbose_eval=False,
        early_stopping_rounds=spec.trainer.early_stopping_rounds,
    )  # fmt: skip

    def score(frame: pd.DataFrame) -> np.ndarray:
        matrix = xgboost.DMatrix(encode(frame, vocab))
        scores: np.ndarray = booster.predict(
            matrix, iteration_range=(0, booster.best_iteration + 1)
        )
        return scores

    return score


def weights(train: pd.DataFrame, how: str) -> np.ndarray:
    post = train[POST].to_numpy() == 1 if POST in train.columns else np.zeros(len(train), bool)
    if how == "balanced":
        factor = (~post).sum() / max(int(post.sum()), 1)
    else:
        factor = float(how) if how else 1.0
    return np.where(post, factor, 1.0)


STRATEGIES = {
    "time": ("time", ""),
    "within": ("within", ""),
    "within+w3": ("within", "3"),
    "within+w10": ("within", "10"),
    "within+balanced": ("within", "balanced"),
}


def measure(spec: ModelSpec, world: World, seed: int) -> dict[str, dict[str, float]]:
    target = spec.metrics.target_precision
    y_test, y_pre = world.test[LABEL].to_numpy(), world.pre_test[LABEL].to_numpy()
    out: dict[str, dict[str, float]] = {}

    def judged(
        name: str, score: Callable[[pd.DataFrame], np.ndarray], validation: pd.DataFrame,
        extra: dict[str, float],
    ) -> None:  # fmt: skip
        chosen_on = (validation[LABEL].to_numpy(), score(validation))
        test = metrics_at(y_test, score(world.test), target, chosen_on=chosen_on)
        pre = metrics_at(y_pre, score(world.pre_test), target)
        out[name] = {"post_pr_auc": test["pr_auc"], "post_recall": test["recall_at_threshold"],
                     "pre_pr_auc": pre["pr_auc"], **extra}  # fmt: skip

    before = world.window[world.window[TS] < pd.Timestamp(world.change_point)]
    old, _ = split_within_regimes(before, spec, None)
    champion = fit(spec, old["train"], old["validation"], np.ones(len(old["train"])), seed)
    judged("champion", champion, old["validation"], {})
    for name, (split, how) in STRATEGIES.items():
        change = world.change_point if split == "within" else None
        parts, _ = split_within_regimes(world.window, spec, change)
        post_hold = (parts["holdout"][TS] >= pd.Timestamp(world.change_point)).to_numpy()
        post_train = (parts["train"][TS] >= pd.Timestamp(world.change_point)).to_numpy()
        score = fit(spec, parts["train"], parts["validation"], weights(parts["train"], how), seed)
        holdout = parts["holdout"][LABEL].to_numpy()
        judged(name, score, parts["validation"], {
            "train_post_positives": float(parts["train"][LABEL].to_numpy()[post_train].sum()),
            "holdout_post_positives": float(holdout[post_hold].sum()),
        })  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--scenario", default="crypto-cash-out")
    parser.add_argument("--days", type=int, default=8, help="training window, days")
    parser.add_argument("--post-days", type=float, default=1.5, help="of them after the change")
    parser.add_argument("--test-days", type=int, default=1)
    args = parser.parse_args(argv)
    spec = load_model_spec(ROOT / "deploy/apps/fraud/model.yaml")
    runs = []
    for seed in (int(s) for s in args.seeds.split(",")):
        world = simulate(seed, args.scenario, args.days, args.post_days, args.test_days)
        runs.append(measure(spec, world, seed))
        print(f"seed {seed}: done", flush=True)
    names = list(runs[0])
    columns = list(runs[0]["time"])
    mean = {n: {c: float(np.mean([r[n].get(c, np.nan) for r in runs])) for c in columns}
            for n in names}  # fmt: skip
    print(f"\n{args.scenario}: {args.days} d window, last {args.post_days} d post-change, "
          f"{args.test_days} d test; mean of {len(runs)} seeds (ratio to time split)")  # fmt: skip
    print(f"{'strategy':<18}" + "".join(f"{c:>24}" for c in columns))
    for name in names:
        cells = []
        for column in columns:
            value, base = mean[name][column], mean["time"][column]
            ratio = f"({value / base:.2f}x)" if base and not np.isnan(value) else ""
            cells.append(f"{value:>15.3f} {ratio:>8}" if not np.isnan(value) else f"{'-':>24}")
        print(f"{name:<18}" + "".join(cells))
    print("\nper seed, post-change PR-AUC / recall:")
    for name in names:
        shown = "  ".join(
            f"{r[name]['post_pr_auc']:.3f}/{r[name]['post_recall']:.3f}" for r in runs
        )
        print(f"  {name:<18}{shown}")


if __name__ == "__main__":
    main()
