"""``train_model``: a window of labelled history in, a stored model version out."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import JsonValue

from driftloop.models import (
    GateResult,
    Lineage,
    ModelStore,
    ModelVersion,
    RowCounts,
    TrainingWindow,
)
from driftloop.settings import Settings
from driftloop.training._dataset import LABEL, SPLITS, Dataset, build_dataset
from driftloop.training._evaluate import evaluate, metrics_at, metrics_on, positive_weight
from driftloop.training._gate import judge
from driftloop.training._lineage import feature_views_hash, git_state, package_versions
from driftloop.training._progress import Progress, run_with_progress
from driftloop.training._spec import ModelSpec
from driftloop.training._tune import tune_params
from driftloop.training._worker import MODEL_FILE, train_loop_per_worker


@dataclass(frozen=True)
class TrainResult:
    """What one training run produced. ``version`` is the model store's version id."""

    model_name: str
    version: str
    sha256: str
    metrics: dict[str, float]
    baseline_metrics: dict[str, float]
    champion_metrics: dict[str, float] | None
    gate: GateResult
    threshold: float | None
    rows: RowCounts
    labelled_rows: int
    duration_s: float
    train_s: float


def _connect(settings: Settings) -> None:
    import ray

    from driftloop.raycluster import enable_token_auth

    if not ray.is_initialized():
        enable_token_auth(settings)
        ray.init(address=settings.ray_gcs_address, log_to_driver=False)


def _gpu(mode: str, override: bool | None) -> bool:
    import ray

    if override is not None:
        return override
    if mode == "auto":
        return bool(ray.cluster_resources().get("GPU", 0) > 0)  # type: ignore[no-untyped-call]
    return mode == "on"


def xgboost_params(
    spec: ModelSpec, dataset: Dataset, use_gpu: bool, nthread: int = 1
) -> dict[str, Any]:
    """The complete XGBoost params: the spec's, plus what makes runs repeatable."""
    rows, positives = dataset.rows("train"), dataset.positives("train")
    params: dict[str, Any] = {
        **spec.trainer.params,
        "seed": spec.trainer.seed,
        "nthread": nthread,
        "device": "cuda" if use_gpu else "cpu",
        "scale_pos_weight": (rows - positives) / max(positives, 1),
    }
    return params  # GPU hist is deterministic by default since XGBoost 2


def _fit(
    spec: ModelSpec, dataset: Dataset, params: dict[str, Any], settings: Settings,
    num_workers: int, use_gpu: bool, progress: Progress | None = None,
) -> bytes:  # fmt: skip
    """Run the Ray Train job; return the booster's native JSON from its final checkpoint."""
    import ray
    import ray.train
    from ray.train.xgboost import XGBoostTrainer

    rows: dict[str, Any] = {"train": None, "validation": None}
    datasets: dict[str, Any] | None = None
    ingest: ray.train.DataConfig | None = None
    if dataset.shards is None:
        # Every worker gets all rows and keeps its own by row number (see _worker).
        rows = {name: ray.put(dataset.splits[name]) for name in rows}
    else:  # each worker reads its own parts (see _ingest)
        from driftloop.training._ingest import rank_datasets, unsplit

        datasets, ingest = rank_datasets(dataset.shards, num_workers), unsplit()

    def fit(queue: Any) -> ray.train.Result:
        trainer = XGBoostTrainer(
            train_loop_per_worker,
            datasets=datasets,
            dataset_config=ingest,
            train_loop_config={
                "params": params,
                "features": dataset.names,
                **rows,
                "num_boost_round": spec.trainer.num_boost_round,
                "early_stopping_rounds": spec.trainer.early_stopping_rounds,
                "report_every": spec.trainer.report_every,
                "progress": queue,
            },
            scaling_config=ray.train.ScalingConfig(
                num_workers=num_workers,
                use_gpu=use_gpu,
                resources_per_worker={"CPU": params["nthread"], **({"GPU": 1} if use_gpu else {})},
            ),
            run_config=ray.train.RunConfig(
                name=f"{spec.name}-{uuid.uuid4().hex[:12]}",
                storage_path=str(settings.state_dir / "ray-train"),
            ),
        )
        return trainer.fit()

    result = run_with_progress(fit, spec.trainer.num_boost_round, progress)
    if result.checkpoint is None:
        raise RuntimeError(f"training {spec.name} reported no final checkpoint")
    with result.checkpoint.as_directory() as directory:
        return (Path(directory) / MODEL_FILE).read_bytes()


def _champion_metrics(
    store: ModelStore, spec: ModelSpec, champion: str, dataset: Dataset
) -> tuple[dict[str, float] | None, dict[str, float] | None, str | None]:
    """The champion's metrics on this run's holdout and on its post-change rows (None
    without a change point), or why it could not be scored."""
    from driftloop.models import LoadedModel, ModelStoreError

    try:
        loaded = LoadedModel.load(store.get(spec.name, champion))
        scores = loaded.predict(dataset.raw["holdout"])
        val_scores = loaded.predict(dataset.raw["validation"])
    except (ModelStoreError, KeyError, ValueError) as exc:
        return None, None, str(exc)
    y = dataset.splits["holdout"][LABEL].to_numpy()
    y_val = dataset.splits["validation"][LABEL].to_numpy()
    weight = positive_weight(loaded.booster)
    chosen_on = (y_val, val_scores)
    target = spec.metrics.target_precision
    whole = metrics_at(y, scores, target, weight, chosen_on=chosen_on)
    post = dataset.post_change("holdout")
    if post is None:
        return whole, None, None
    return whole, metrics_on(post, y, scores, target, weight, chosen_on=chosen_on), None


def _say(progress: Progress | None, message: str) -> None:
    if progress is not None:
        progress(message)


@dataclass(frozen=True)
class Fitted:
    """A trained booster and how it was trained."""

    model_json: bytes
    params: dict[str, Any]
    search: dict[str, JsonValue] | None
    num_workers: int
    use_gpu: bool
    train_s: float


@dataclass(frozen=True)
class Assessment:
    """The holdout verdict on a booster: its metrics, the baseline's, the champion's on
    the same rows (if one was named), the gate, and its holdout scores; with a change
    point, the three metrics again on the post-change holdout rows."""

    metrics: dict[str, float]
    baseline: dict[str, float]
    champion: dict[str, float] | None
    gate: GateResult
    scores: list[float]
    post_change: dict[str, dict[str, float] | None] | None = None
    """``challenger``, ``baseline``, ``champion`` on the post-change holdout rows."""


def fit(
    spec: ModelSpec,
    dataset: Dataset,
    settings: Settings,
    *,
    num_workers: int | None = None,
    cpus_per_worker: int | None = None,
    use_gpu: bool | None = None,
    tune: bool | None = None,
    progress: Progress | None = None,
) -> Fitted:
    """Train the booster with Ray Train (after the spec's Ray Tune search, if enabled).
    Workers, CPUs per worker and GPU use come from the arguments, else from the spec."""
    _connect(settings)
    workers = num_workers or spec.trainer.num_workers
    gpu = _gpu(spec.trainer.use_gpu, use_gpu)
    params = xgboost_params(spec, dataset, gpu, cpus_per_worker or spec.trainer.cpus_per_worker)
    search: dict[str, JsonValue] | None = None
    if spec.tune.enabled if tune is None else tune:
        found = tune_params(spec, dataset, params, settings, gpu, progress)
        params, search = found.params, found.summary
    device = "GPU" if gpu else "CPU"
    _say(progress, f"training on {workers} worker(s) x {params['nthread']} CPU(s), {device}")
    started = time.monotonic()
    model_json = _fit(spec, dataset, params, settings, workers, gpu, progress)
    return Fitted(model_json, params, search, workers, gpu, time.monotonic() - started)


def assess(
    spec: ModelSpec,
    dataset: Dataset,
    model_json: bytes,
    store: ModelStore,
    champion: str | None = None,
) -> Assessment:
    """Score the holdout: the booster, the baseline, the champion; then the gate."""
    evaluation = evaluate(
        model_json, dataset.splits["train"], dataset.splits["validation"],
        dataset.splits["holdout"], dataset.names, LABEL,
        target_precision=spec.metrics.target_precision, seed=spec.trainer.seed,
        post_change=dataset.post_change("holdout"),
    )  # fmt: skip
    champion_metrics, champion_post, champion_error = (
        _champion_metrics(store, spec, champion, dataset) if champion else (None, None, None)
    )
    verdict = judge(
        spec.gate, evaluation.metrics, evaluation.baseline, champion_metrics, champion,
        champion_error, post_change=evaluation.post_change, champion_post_change=champion_post,
    )  # fmt: skip
    post_change = None
    if evaluation.post_change is not None:
        post_change = {
            "challenger": evaluation.post_change,
            "baseline": evaluation.baseline_post_change,
            "champion": champion_post,
        }
    return Assessment(
        evaluation.metrics, evaluation.baseline, champion_metrics, verdict,
        evaluation.scores.tolist(), post_change,
    )  # fmt: skip


def register(
    spec: ModelSpec,
    dataset: Dataset,
    fitted: Fitted,
    assessment: Assessment,
    window: TrainingWindow,
    settings: Settings,
    store: ModelStore,
    *,
    trigger_event_id: str | None = None,
    extra: dict[str, JsonValue] | None = None,
) -> ModelVersion:
    """Store the booster with its features, lineage, verdict and reference profiles."""
    sha, dirty = git_state(settings)
    recorded: dict[str, JsonValue] = {
        "xgboost": fitted.params,
        "num_boost_round": spec.trainer.num_boost_round,
        "early_stopping_rounds": spec.trainer.early_stopping_rounds,
        "num_workers": fitted.num_workers,
        "use_gpu": fitted.use_gpu,
        "split": spec.split.model_dump(),
        "target_precision": spec.metrics.target_precision,
        "threshold_chosen_on": "validation",
        "exclude_features": list(spec.exclude_features),
        "tune": fitted.search,
        "split_strategy": dataset.strategy,
        "change_point": dataset.change_point.isoformat() if dataset.change_point else None,
        "sample_weights": "none",
    }
    metrics = {**assessment.metrics}
    metrics |= {f"baseline_{k}": v for k, v in assessment.baseline.items()}
    metrics |= {f"champion_{k}": v for k, v in (assessment.champion or {}).items()}
    for who, measured in (assessment.post_change or {}).items():
        prefix = "" if who == "challenger" else f"{who}_"
        metrics |= {f"{prefix}post_change_{k}": v for k, v in (measured or {}).items()}
    references, reference_rows = _references(dataset, assessment.scores)
    lineage = Lineage(
        git_sha=sha,
        git_dirty=dirty,
        feature_service=spec.feature_service,
        feature_views_hash=feature_views_hash(settings),
        training_window=window,
        rows=_rows(dataset),
        data_hash="sha256:" + dataset.data_hash,
        params=recorded,
        metrics=metrics,
        packages=package_versions(),
        seed=spec.trainer.seed,
        trigger_event_id=trigger_event_id,
        gate=assessment.gate,
        request_schema=spec.request_schema(),
        extra={
            "labelled_rows": dataset.labelled_rows,
            "train_seconds": round(fitted.train_s, 3),
            "regimes": {**dataset.regimes(), "reference_rows": reference_rows},
            **(extra or {}),
        },
    )
    return store.put(
        spec.name, fitted.model_json, filename=MODEL_FILE, features=dataset.feature_spec(),
        lineage=lineage, references=references,
    )  # fmt: skip


MIN_POST_CHANGE_REFERENCE_ROWS = 500
"""Post-change rows (all splits) needed for the reference profiles to be of them alone."""


def _references(dataset: Dataset, scores: list[float]) -> tuple[dict[str, bytes], str]:
    """The version's whylogs reference profiles, and which rows they are of.

    With a change point and at least :data:`MIN_POST_CHANGE_REFERENCE_ROWS` post-change
    rows: the features of the post-change rows of every split (train, validation and
    holdout: the regime's whole labelled span in the window, not only its oldest part,
    which the time split gives to train) and the post-change holdout scores, so the
    monitor compares the promoted version's traffic with the regime it was trained for
    (not with the mix, which would keep raising the change it healed). Otherwise all
    training rows and all holdout scores.

    Measured on the demo's loop (seed 1): a reference of the post-change train rows alone
    (2,948 rows, the first 8 of 12 event-hours after the change) had ``amount_max_24h``
    q90 1,944 and ``txn_count_24h`` mean 15.9, against 1,100-1,320 and 13.0-13.6 in each
    of the 13 windows v2 then served: a drift event in 12 of them."""
    import pandas as pd

    from driftloop.profiles import reference_profiles

    post = [(split, mask) for split in SPLITS if (mask := dataset.post_change(split)) is not None]
    holdout = dataset.post_change("holdout")
    rows = sum(int(mask.sum()) for _, mask in post)
    if holdout is not None and holdout.any() and rows >= MIN_POST_CHANGE_REFERENCE_ROWS:
        features = pd.concat([dataset.raw[split][mask] for split, mask in post], ignore_index=True)
        kept = [score for score, after in zip(scores, holdout, strict=True) if after]
        return reference_profiles(features, kept), "post-change"
    return reference_profiles(dataset.raw["train"], scores), "all"


def _rows(dataset: Dataset) -> RowCounts:
    return RowCounts(**{name: dataset.rows(name) for name in SPLITS})


def train_model(
    spec: ModelSpec,
    window: TrainingWindow,
    settings: Settings,
    *,
    num_workers: int | None = None,
    cpus_per_worker: int | None = None,
    use_gpu: bool | None = None,
    trigger_event_id: str | None = None,
    champion: str | None = None,
    tune: bool | None = None,
    store: ModelStore | None = None,
    progress: Progress | None = None,
    change_point: datetime | None = None,
) -> TrainResult:
    """Train ``spec``'s model on the labelled transactions of ``window`` with Ray Train,
    evaluate it on the most recent slice against a logistic-regression baseline and, when
    ``champion`` names a stored version, against that version on the same rows; judge it
    by the spec's gate; store it with its features, lineage, verdict and reference
    profiles. The retraining workflow runs the same phases as separate steps:
    :func:`build_dataset`, :func:`fit`, :func:`assess`, :func:`register`.

    ``tune``: run the spec's Ray Tune search first (default: ``spec.tune.enabled``).
    ``progress``: called with one line per phase and per reported boosting round.
    ``change_point``: when the regime the run is for began (split within regimes, judged
    on the rows after it; see :func:`build_dataset` and :func:`judge`).
    Connects to the Ray cluster of ``settings`` unless this process already is connected
    (and stays connected). Same window, seed, worker count and code: same model digest."""
    from driftloop.training._persist import delete_tree

    started = time.monotonic()
    models = store or ModelStore.from_settings(settings)
    # Where a set built on Ray puts its parts for the workers (unused by a local build).
    parts = f"{settings.runs}/train-{uuid.uuid4().hex[:12]}/dataset"
    try:
        dataset = build_dataset(spec, settings, window, change_point, parts)
        rows = _rows(dataset)
        _say(progress, f"rows: {dataset.labelled_rows:,} labelled -> {rows.model_dump()}")
        fitted = fit(
            spec, dataset, settings, num_workers=num_workers, cpus_per_worker=cpus_per_worker,
            use_gpu=use_gpu, tune=tune, progress=progress,
        )  # fmt: skip
    finally:
        delete_tree(parts.rsplit("/", 1)[0])  # only the workers read them
    assessment = assess(spec, dataset, fitted.model_json, models, champion)
    _say(progress, f"gate: {'passed' if assessment.gate.passed else 'failed'}")
    stored = register(
        spec, dataset, fitted, assessment, window, settings, models,
        trigger_event_id=trigger_event_id,
    )  # fmt: skip
    _say(progress, f"stored {spec.name} {stored.version}")
    return TrainResult(
        model_name=spec.name,
        version=stored.version,
        sha256=stored.sha256,
        metrics=assessment.metrics,
        baseline_metrics=assessment.baseline,
        champion_metrics=assessment.champion,
        gate=assessment.gate,
        threshold=assessment.metrics.get("threshold"),
        rows=rows,
        labelled_rows=dataset.labelled_rows,
        duration_s=time.monotonic() - started,
        train_s=fitted.train_s,
    )
