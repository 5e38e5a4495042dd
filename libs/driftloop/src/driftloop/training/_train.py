"""``train_model``: a window of labelled history in, a stored model version out."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import JsonValue

from driftloop.models import Lineage, ModelStore, RowCounts, TrainingWindow
from driftloop.settings import Settings
from driftloop.training._dataset import LABEL, SPLITS, Dataset, build_dataset
from driftloop.training._evaluate import evaluate
from driftloop.training._lineage import feature_views_hash, git_state, package_versions
from driftloop.training._spec import ModelSpec
from driftloop.training._worker import MODEL_FILE, train_loop_per_worker


@dataclass(frozen=True)
class TrainResult:
    """What one training run produced. ``version`` is the model store's version id."""

    model_name: str
    version: str
    sha256: str
    metrics: dict[str, float]
    baseline_metrics: dict[str, float]
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
    train = dataset.splits["train"]
    positives = int(train[LABEL].sum())
    params: dict[str, Any] = {
        **spec.trainer.params,
        "seed": spec.trainer.seed,
        "nthread": nthread,
        "device": "cuda" if use_gpu else "cpu",
        "scale_pos_weight": (len(train) - positives) / max(positives, 1),
    }
    if use_gpu:
        params["deterministic_histogram"] = True
    return params


def _fit(
    spec: ModelSpec, dataset: Dataset, params: dict[str, Any], settings: Settings,
    num_workers: int, use_gpu: bool,
) -> bytes:  # fmt: skip
    """Run the Ray Train job; return the booster's native JSON from its final checkpoint."""
    import ray.data
    import ray.train
    from ray.train.xgboost import XGBoostTrainer

    datasets = {
        name: ray.data.from_pandas(dataset.splits[name]).materialize()
        for name in ("train", "validation")
    }
    trainer = XGBoostTrainer(
        train_loop_per_worker,
        train_loop_config={
            "params": params,
            "features": dataset.names,
            "num_boost_round": spec.trainer.num_boost_round,
            "early_stopping_rounds": spec.trainer.early_stopping_rounds,
            "report_every": spec.trainer.report_every,
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
        datasets=datasets,
        # Every worker sees all rows and keeps its own by row number (see _worker).
        dataset_config=ray.train.DataConfig(datasets_to_split=[]),
    )
    result = trainer.fit()
    if result.checkpoint is None:
        raise RuntimeError(f"training {spec.name} reported no final checkpoint")
    with result.checkpoint.as_directory() as directory:
        return (Path(directory) / MODEL_FILE).read_bytes()


def train_model(
    spec: ModelSpec,
    window: TrainingWindow,
    settings: Settings,
    *,
    num_workers: int | None = None,
    use_gpu: bool | None = None,
    trigger_event_id: str | None = None,
    store: ModelStore | None = None,
) -> TrainResult:
    """Train ``spec``'s model on the labelled transactions of ``window`` with Ray Train,
    evaluate it on the most recent slice against a logistic-regression baseline, and put
    it in the model store with its features and lineage.

    Connects to the Ray cluster of ``settings`` unless this process already is connected
    (and stays connected). Same window, seed, worker count and code: same model digest."""
    started = time.monotonic()
    dataset, labelled_rows = build_dataset(spec, settings, window)
    _connect(settings)
    workers = num_workers or spec.trainer.num_workers
    gpu = _gpu(spec.trainer.use_gpu, use_gpu)
    params = xgboost_params(spec, dataset, gpu)
    fit_started = time.monotonic()
    model_json = _fit(spec, dataset, params, settings, workers, gpu)
    train_s = time.monotonic() - fit_started
    target = spec.metrics.target_precision
    metrics, baseline = evaluate(
        model_json, dataset.splits["train"], dataset.splits["holdout"], dataset.names, LABEL,
        target_precision=target, seed=spec.trainer.seed,
    )  # fmt: skip
    rows = RowCounts(**{name: len(dataset.splits[name]) for name in SPLITS})
    sha, dirty = git_state(settings)
    recorded: dict[str, JsonValue] = {
        "xgboost": params,
        "num_boost_round": spec.trainer.num_boost_round,
        "early_stopping_rounds": spec.trainer.early_stopping_rounds,
        "num_workers": workers,
        "use_gpu": gpu,
        "split": spec.split.model_dump(),
        "target_precision": target,
        "exclude_features": list(spec.exclude_features),
    }
    lineage = Lineage(
        git_sha=sha,
        git_dirty=dirty,
        feature_service=spec.feature_service,
        feature_views_hash=feature_views_hash(settings),
        training_window=window,
        rows=rows,
        data_hash="sha256:" + dataset.data_hash,
        params=recorded,
        metrics={**metrics, **{f"baseline_{k}": v for k, v in baseline.items()}},
        packages=package_versions(),
        seed=spec.trainer.seed,
        trigger_event_id=trigger_event_id,
        extra={"labelled_rows": labelled_rows, "train_seconds": round(train_s, 3)},
    )
    stored = (store or ModelStore.from_settings(settings)).put(
        spec.name, model_json, filename=MODEL_FILE, features=dataset.feature_spec(),
        lineage=lineage,
    )  # fmt: skip
    return TrainResult(
        model_name=spec.name,
        version=stored.version,
        sha256=stored.sha256,
        metrics=metrics,
        baseline_metrics=baseline,
        threshold=metrics.get("threshold"),
        rows=rows,
        labelled_rows=labelled_rows,
        duration_s=time.monotonic() - started,
        train_s=train_s,
    )
