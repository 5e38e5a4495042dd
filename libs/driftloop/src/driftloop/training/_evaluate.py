"""Holdout metrics of a scored model, and the trivial baseline they are read against."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd


def positive_weight(booster: Any) -> float:
    """The positive-class weight (``scale_pos_weight``) an XGBoost booster was trained
    with, read from the booster itself (its saved configuration keeps it); 1 if none."""
    import json

    objective = json.loads(booster.save_config())["learner"]["objective"]
    return float(objective.get("reg_loss_param", {}).get("scale_pos_weight", 1.0))


def unweighted(scores: np.ndarray, weight: float) -> np.ndarray:
    """Probabilities of a model trained with positive-class weight ``weight``, corrected
    back to the data's class balance: weighting multiplies the odds a logistic loss
    learns by ``weight``, so dividing the odds by it undoes that. Ranking is unchanged."""
    if weight == 1.0:
        return scores
    corrected: np.ndarray = scores / (scores + weight * (1.0 - scores))
    return corrected


def threshold_for(y: np.ndarray, scores: np.ndarray, target_precision: float) -> float | None:
    """The smallest threshold whose precision on ``(y, scores)`` reaches the target, or
    None where none does."""
    from sklearn.metrics import precision_recall_curve  # type: ignore[import-untyped]

    precision, _, thresholds = precision_recall_curve(y, scores)
    # precision[i] belongs to thresholds[i]; the last precision has no threshold.
    reaching = np.flatnonzero(precision[:-1] >= target_precision)
    return float(thresholds[int(reaching[0])]) if reaching.size else None  # ascending


def metrics_at(
    y: np.ndarray,
    scores: np.ndarray,
    target_precision: float,
    weight: float = 1.0,
    *,
    chosen_on: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, float]:
    """ROC-AUC, PR-AUC (average precision), Brier score, and the operating point: the
    smallest threshold whose precision reaches ``target_precision``, with the precision
    and recall it gives on ``(y, scores)``.

    ``chosen_on``: the ``(labels, scores)`` the threshold is chosen on — the validation
    rows, so that the holdout judges the threshold instead of choosing it (chosen on the
    holdout itself, precision at it is the target by construction and recall flatters).
    Where no threshold reaches the target there, ``threshold`` is absent and recall is 0.

    Brier judges calibration, so it is of the scores corrected for the positive-class
    ``weight`` the model was trained with (see :func:`unweighted`): a model trained on a
    different class balance is not penalised for its weighting, only for being wrong."""
    from sklearn.metrics import (
        average_precision_score,
        brier_score_loss,
        roc_auc_score,
    )

    out = {
        "roc_auc": float(roc_auc_score(y, scores)),
        "pr_auc": float(average_precision_score(y, scores)),
        "brier": float(brier_score_loss(y, unweighted(scores, weight))),
        "positives": float(y.sum()),
        "rows": float(len(y)),
    }
    y_choose, scores_choose = chosen_on if chosen_on is not None else (y, scores)
    threshold = threshold_for(y_choose, scores_choose, target_precision)
    if threshold is None:
        out["recall_at_threshold"] = 0.0
        return out
    flagged = scores >= threshold
    caught = int((flagged & (y == 1)).sum())
    out["threshold"] = threshold
    out["precision_at_threshold"] = caught / int(flagged.sum()) if flagged.any() else 0.0
    out["recall_at_threshold"] = caught / int(y.sum()) if y.any() else 0.0
    return out


def metrics_on(
    rows: np.ndarray,
    y: np.ndarray,
    scores: np.ndarray,
    target_precision: float,
    weight: float = 1.0,
    *,
    chosen_on: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, float]:
    """:func:`metrics_at` on the ``rows`` (a boolean mask) of ``(y, scores)``, with the
    threshold still chosen on ``chosen_on``; only the counts where those rows lack a class
    (no ranking metric is defined on them)."""
    y_rows, scores_rows = y[rows], scores[rows]
    positives = float(y_rows.sum())
    if positives == 0 or positives == len(y_rows):
        return {"positives": positives, "rows": float(len(y_rows))}
    return metrics_at(y_rows, scores_rows, target_precision, weight, chosen_on=chosen_on)


def baseline_scores(
    train: pd.DataFrame, frames: list[pd.DataFrame], names: list[str], label: str, seed: int
) -> list[np.ndarray]:
    """A logistic regression on the same features (medians for missing values, scaled),
    fitted on ``train``; its scores on each of ``frames``."""
    from sklearn.impute import SimpleImputer  # type: ignore[import-untyped]
    from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]
    from sklearn.pipeline import make_pipeline  # type: ignore[import-untyped]
    from sklearn.preprocessing import StandardScaler  # type: ignore[import-untyped]

    model: Any = make_pipeline(
        SimpleImputer(strategy="median", keep_empty_features=True),
        StandardScaler(),
        LogisticRegression(max_iter=2000, random_state=seed),
    )
    model.fit(train[names].to_numpy(np.float64), train[label].to_numpy())
    return [model.predict_proba(frame[names].to_numpy(np.float64))[:, 1] for frame in frames]


def booster_scores(
    model_json: bytes, holdout: pd.DataFrame, names: list[str]
) -> tuple[np.ndarray, float]:
    """The booster's scores on the holdout, from the bytes that are stored, and its
    positive-class weight."""
    import xgboost

    booster = xgboost.Booster(params={"nthread": 1}, model_file=bytearray(model_json))
    matrix = xgboost.DMatrix(holdout[names], feature_names=names, nthread=1)
    scores: np.ndarray = booster.predict(matrix)
    return scores, positive_weight(booster)


@dataclass(frozen=True)
class Evaluation:
    """Holdout metrics of the model and of the baseline, and the model's holdout scores.

    The baseline's metrics also carry ``prior`` (the fraud rate: a constant score's PR-AUC).
    ``post_change``, ``baseline_post_change``: the same on the holdout rows after the
    change point, when the dataset has one."""

    metrics: dict[str, float]
    baseline: dict[str, float]
    scores: np.ndarray
    post_change: dict[str, float] | None = None
    baseline_post_change: dict[str, float] | None = None


def evaluate(
    model_json: bytes,
    train: pd.DataFrame,
    validation: pd.DataFrame,
    holdout: pd.DataFrame,
    names: list[str],
    label: str,
    *,
    target_precision: float,
    seed: int,
    post_change: np.ndarray | None = None,
) -> Evaluation:
    """Score the holdout with the stored bytes and with a logistic-regression baseline;
    each one's threshold is chosen on the validation rows. ``post_change``: which holdout
    rows are after the change point, to be judged on their own as well."""
    y, y_val = holdout[label].to_numpy(), validation[label].to_numpy()
    scores, weight = booster_scores(model_json, holdout, names)
    val_scores, _ = booster_scores(model_json, validation, names)
    model = metrics_at(y, scores, target_precision, weight, chosen_on=(y_val, val_scores))
    base_val, base_hold = baseline_scores(train, [validation, holdout], names, label, seed)
    base = metrics_at(y, base_hold, target_precision, chosen_on=(y_val, base_val))
    base["prior"] = float(y.mean())
    if post_change is None:
        return Evaluation(model, base, scores)
    post = metrics_on(
        post_change, y, scores, target_precision, weight, chosen_on=(y_val, val_scores)
    )
    base_post = metrics_on(post_change, y, base_hold, target_precision, chosen_on=(y_val, base_val))
    base_post["prior"] = float(y[post_change].mean()) if post_change.any() else 0.0
    return Evaluation(model, base, scores, post, base_post)
