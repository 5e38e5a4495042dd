"""Automatic rollback on the simulator's labelled traffic, judged by the monitor's own label
join and rollback watch with the shipped policy (the issue's goals in brackets):

* **no regression** [0 wrong rollbacks over at least 50 labelled windows]: the model's
  predictions on bench/monitor.py's no-drift run (17 event-days), the version's name
  switching every ``rollback.evaluations`` + 1 evaluations as if the same model were
  promoted again. Each switch arms a watch of the next ``rollback.evaluations``
  evaluations against the last figures of the version before it, so every rollback event
  here is a wrong one;
* **regression** [a revert at most 3 labelled windows after the regression shows]: the
  same traffic where, from an evaluation on, a deliberately worse model answers (the same
  features and parameters, trained on the first ``WEAK_ROWS`` rows of the training days):
  the evaluations of it until its rollback event, at each of several promotion points.

Each payment's label is joined right after its prediction, in event-time order, so an
evaluation is ``performance.labels`` consecutive payments (live, labels come days later;
what is judged is the same). No Kafka, no Ray: the monitor's classes on a real SQLite
checkpoint. Needs bench/monitor.py's kept directory (``DRIFTLOOP_BENCH_MONITOR_DIR``),
whose setup makes the features and the model (about 9 minutes, once)."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import pandas as pd
from driftloop_monitor._checkpoint import Checkpoint
from driftloop_monitor._join import LabelJoin
from driftloop_monitor._rollback import Rollbacks, Watched

from bench._common import record
from driftloop.drift import MonitorPolicy, load_policy
from driftloop.models import LoadedModel, ModelStore
from tests.integration import monitor_support as ms

ROOT = Path(__file__).resolve().parents[1]
WEAK_ROWS = 1_500
PROMOTIONS = (4, 12, 20, 28, 36)  # evaluations of the good model before the worse one


def _replay(
    policy: MonitorPolicy, answers: list[tuple[str, float, bool, bool]]
) -> list[tuple[str, Watched | None]]:
    """(version, score, decision, is_fraud) in order, through the label join and the
    rollback watch: each evaluation's version and ``Watched`` (None: nothing watched)."""
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = Checkpoint(Path(tmp) / "checkpoint.sqlite")
        join = LabelJoin(checkpoint, policy.performance)
        rollbacks = Rollbacks(checkpoint, policy)
        out: list[tuple[str, Watched | None]] = []
        t = 1_800_000_000.0
        with checkpoint.transaction():
            for i, (version, score, decision, fraud) in enumerate(answers):
                t += 10
                join.prediction(f"t{i}", version, t, score, decision)
                joined = join.label(f"t{i}", fraud, t + 1)
                rows = join.due(joined) if joined is not None else None
                if joined is not None and rows is not None:
                    out.append((joined, rollbacks.evaluated(joined, rows)))
    return out


def _answers(model: LoadedModel, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    scores = np.clip(model.predict(frame[ms.FEATURES]), 0.0, 1.0)
    return scores, scores >= (model.threshold or 0.5)


def main() -> None:
    from sklearn.metrics import average_precision_score  # type: ignore[import-untyped]

    kept = os.environ.get("DRIFTLOOP_BENCH_MONITOR_DIR")
    if not kept or not (Path(kept) / "frames" / "done").exists():
        raise SystemExit("set DRIFTLOOP_BENCH_MONITOR_DIR to bench/monitor.py's kept directory")
    root = Path(kept)
    store = ModelStore(str(root / "models"))
    stored = store.latest("fraud")
    assert stored is not None
    good = LoadedModel.load(stored)
    quiet = pd.read_parquet(root / "frames" / "quiet.parquet")
    quiet = quiet.sort_values("event_timestamp", kind="stable").reset_index(drop=True)
    train = pd.read_parquet(root / "frames" / "train.parquet")
    with tempfile.TemporaryDirectory() as tmp:
        weak = ms.train_and_store(train.iloc[:WEAK_ROWS].reset_index(drop=True),
                                  ModelStore(tmp), name="weak")  # fmt: skip
        weak_scores, weak_decisions = _answers(weak, quiet)
    policy = load_policy(ROOT / "deploy" / "apps" / "fraud" / "monitor.yaml")
    labels_per = policy.performance.labels
    y = quiet["is_fraud"].to_numpy(bool)
    scores, decisions = _answers(good, quiet)
    windows = len(quiet) // labels_per
    result: dict[str, object] = {
        "payments": len(quiet),
        "labelled_windows": windows,
        "pr_auc_good": float(average_precision_score(y, scores)),
        "pr_auc_weak": float(average_precision_score(y, weak_scores)),
    }

    # no regression: the same model, renamed after each watch and one evaluation more
    switch = policy.rollback.evaluations + 1
    same = [
        (f"v{(i // labels_per) // switch}", float(scores[i]), bool(decisions[i]), bool(y[i]))
        for i in range(windows * labels_per)
    ]
    judged = [w for _, w in _replay(policy, same) if w is not None]
    wrong = [w for w in judged if w.event is not None]
    result["no_regression_promotions"] = len({w.version for w in judged})
    result["no_regression_watched_evaluations"] = sum(w.verdict != "closed" for w in judged)
    result["no_regression_wrong_rollbacks"] = len(wrong)
    result["no_regression_verdicts"] = sorted({w.verdict for w in judged})

    # regression: the worse model promoted after the good one's k-th evaluation
    delays: list[float] = []
    for k in PROMOTIONS:
        cut = k * labels_per
        answers = [
            ("good", float(scores[i]), bool(decisions[i]), bool(y[i])) if i < cut
            else ("weak", float(weak_scores[i]), bool(weak_decisions[i]), bool(y[i]))
            for i in range(windows * labels_per)
        ]  # fmt: skip
        weak_evals = [w for v, w in _replay(policy, answers) if v == "weak" and w is not None]
        fired = [w.evaluation for w in weak_evals if w.event is not None]
        delays.append(float(fired[0]) if fired else float("nan"))
        result[f"regression_after_{k}_evaluations_to_rollback"] = fired[0] if fired else None
    result["regression_reverted_within_3"] = sum(d <= 3 for d in delays if d == d)
    result["regression_runs"] = len(delays)
    record("rollback", result)


if __name__ == "__main__":
    main()
