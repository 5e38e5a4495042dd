"""build-dataset → train → evaluate → register → promote, each a function of strings.

Every step is safe to run again with the same inputs — the way a retry or a resumed
run repeats it: the dataset and the candidate are rewritten identically (same window,
same seed), registering the same bytes returns the stored version, and promotion
checks what git already says before it changes anything.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from driftloop.models import TrainingWindow
from driftloop.retrain._stdout import result_only_stdout
from driftloop.settings import Settings, get_settings

log = logging.getLogger(__name__)
CANDIDATE = "model.json"


def work_uri(settings: Settings, run_id: str) -> str:
    """Where the steps of ``run_id`` put what they hand to each other."""
    return f"{settings.runs}/{run_id}/work"


def _spec(settings: Settings, model: str) -> Any:
    from driftloop.training import load_model_spec

    return load_model_spec(settings.deploy_dir / "apps" / model / "model.yaml")


def _window(window: dict[str, str]) -> TrainingWindow:
    return TrainingWindow.model_validate(window)


def _instant(value: str) -> datetime | None:
    """An ISO datetime (with an offset, or UTC when it has none); None for ""."""
    if not value:
        return None
    parsed = datetime.fromisoformat(value)
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


@result_only_stdout
def build_dataset_step(
    model: str, window: str, window_end: str, run_id: str, change_point: str = ""
) -> dict[str, Any]:
    """Point-in-time training set of the window (``window_end`` empty: now), saved; with a
    ``change_point`` (ISO datetime, "" for none) split within regimes."""
    from driftloop.spans import parse_span
    from driftloop.training import build_dataset, save_dataset

    settings = get_settings()
    end = _instant(window_end) or datetime.now(UTC)
    span = TrainingWindow(start=end - parse_span(window), end=end)
    uri = f"{work_uri(settings, run_id)}/dataset"
    # On a Ray-partitioned store the build's tasks write the parts under ``uri`` too.
    dataset = build_dataset(_spec(settings, model), settings, span, _instant(change_point), uri)
    save_dataset(dataset, uri)
    rows = {name: dataset.rows(name) for name in dataset.splits}
    log.info("dataset %s: %s rows", uri, rows)
    return {
        "dataset": uri,
        "window": span.model_dump(mode="json"),
        "rows": rows,
        "labelled_rows": dataset.labelled_rows,
        "data_hash": dataset.data_hash,
        "regimes": dataset.regimes(),
    }


@result_only_stdout
def train_step(model: str, dataset: str, run_id: str) -> dict[str, Any]:
    """Fit the candidate with Ray Train on the saved dataset; write it beside the data."""
    from driftloop.models import sha256_hex
    from driftloop.training import fit, load_dataset, write_bytes

    settings = get_settings()
    built = json.loads(dataset)
    data = load_dataset(built["dataset"])
    fitted = fit(_spec(settings, model), data, settings, progress=log.info)
    uri = f"{work_uri(settings, run_id)}/{CANDIDATE}"
    write_bytes(uri, fitted.model_json)
    return {
        "candidate": uri,
        "sha256": sha256_hex(fitted.model_json),
        "params": fitted.params,
        "search": fitted.search,
        "num_workers": fitted.num_workers,
        "use_gpu": fitted.use_gpu,
        "train_s": round(fitted.train_s, 3),
    }


@result_only_stdout
def evaluate_step(model: str, dataset: str, candidate: str) -> dict[str, Any]:
    """The candidate against the baseline and against the serving champion (the version
    git declares in serve.yaml) on the same holdout, and the gate's verdict."""
    from driftloop.deployments import serving_version
    from driftloop.models import ModelStore
    from driftloop.training import assess, load_dataset, read_bytes, write_bytes

    settings = get_settings()
    built, trained = json.loads(dataset), json.loads(candidate)
    champion = serving_version(settings, model)
    assessment = assess(
        _spec(settings, model), load_dataset(built["dataset"]), read_bytes(trained["candidate"]),
        ModelStore.from_settings(settings), champion,
    )  # fmt: skip
    log.info("gate %s: %s", "passed" if assessment.gate.passed else "failed", assessment.gate)
    # Holdout scores go beside the dataset: a workflow result must stay small.
    scores = f"{built['dataset'].rsplit('/', 1)[0]}/holdout-scores.json"
    write_bytes(scores, json.dumps(assessment.scores).encode())
    return {
        "metrics": assessment.metrics,
        "baseline": assessment.baseline,
        "champion": assessment.champion,
        "champion_version": champion,
        "gate": assessment.gate.model_dump(),
        "scores": scores,
        "post_change": assessment.post_change,
    }


@result_only_stdout
def register_step(
    model: str, dataset: str, candidate: str, evaluation: str, trigger_event_id: str,
    reason: str,
) -> dict[str, Any]:  # fmt: skip
    """Store the candidate with its lineage, verdict and reference profiles."""
    from driftloop.models import GateResult, ModelStore
    from driftloop.training import Assessment, Fitted, load_dataset, read_bytes, register

    settings = get_settings()
    built, trained, judged = json.loads(dataset), json.loads(candidate), json.loads(evaluation)
    fitted = Fitted(
        model_json=read_bytes(trained["candidate"]), params=trained["params"],
        search=trained["search"], num_workers=trained["num_workers"],
        use_gpu=trained["use_gpu"], train_s=trained["train_s"],
    )  # fmt: skip
    assessment = Assessment(
        metrics=judged["metrics"], baseline=judged["baseline"], champion=judged["champion"],
        gate=GateResult.model_validate(judged["gate"]),
        scores=json.loads(read_bytes(judged["scores"])),
        post_change=judged.get("post_change"),
    )  # fmt: skip
    stored = register(
        _spec(settings, model), load_dataset(built["dataset"]), fitted, assessment,
        _window(built["window"]), settings, ModelStore.from_settings(settings),
        trigger_event_id=trigger_event_id or None, extra={"reason": reason},
    )  # fmt: skip
    return {
        "version": stored.version,
        "sha256": stored.sha256,
        "gate_passed": assessment.gate.passed,
        "model_uri": f"models:/{model}/{stored.version}",
    }


@result_only_stdout
def promote_step(
    model: str, registered: str, evaluation: str, trigger_event_id: str, reason: str
) -> dict[str, Any]:
    """Propose the registered version through git when it passed the gate: as the
    serving version, or as its shadow when the model's retrain.yaml says
    ``promote_as: shadow``."""
    from driftloop.deployments import promote_as
    from driftloop.gitops import promote

    settings = get_settings()
    stored, judged = json.loads(registered), json.loads(evaluation)
    if not stored["gate_passed"]:
        return {"promoted": False, "version": stored["version"], "why": "failed the gate"}
    role = promote_as(settings, model)
    outcome = promote(
        settings, model, stored["version"], evaluation=judged,
        trigger_event_id=trigger_event_id or None, reason=reason, as_shadow=role == "shadow",
    )  # fmt: skip
    # Run again after its driver died once main had moved: the promotion is this event's.
    promoted = outcome.changed or outcome.earlier
    why = {} if promoted else {"why": outcome.message}
    return {"promoted": promoted, "version": stored["version"], "as": role, **why,
            **outcome.summary()}  # fmt: skip
