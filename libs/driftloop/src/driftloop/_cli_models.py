"""``driftloop train`` and ``driftloop model …``: thin commands over the training library
and the model store."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer

from driftloop.settings import get_settings

model_app = typer.Typer(help="Versions in the model store.", no_args_is_help=True)


def parse_span(text: str) -> timedelta:
    """``30d`` or ``12h`` as a timedelta, or a usage error."""
    from driftloop.spans import parse_span as parse

    try:
        return parse(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def _window_end(end: str | None) -> datetime:
    """``--end`` as an aware UTC time: naive means UTC, an offset is honoured."""
    if end is None:
        return datetime.now(UTC)
    try:
        parsed = datetime.fromisoformat(end)
    except ValueError as exc:
        raise typer.BadParameter(f"--end: {exc}") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def train(
    model: Annotated[str, typer.Option(help="the model: deploy/apps/<model>/model.yaml")] = "fraud",
    window: Annotated[str, typer.Option(help="how much labelled history, e.g. 7d")] = "7d",
    end: Annotated[str | None, typer.Option(help="window end (ISO, UTC); default now")] = None,
    workers: Annotated[int | None, typer.Option(help="Ray Train workers")] = None,
    cpus_per_worker: Annotated[
        int | None, typer.Option(min=1, help="CPUs per worker (XGBoost nthread)")
    ] = None,
    gpu: Annotated[str, typer.Option(help="auto|on|off")] = "auto",
    tune: Annotated[
        bool | None, typer.Option("--tune/--no-tune", help="Ray Tune search first")
    ] = None,
    champion: Annotated[
        str | None, typer.Option(help="a stored version (or 'latest') to compare with")
    ] = None,
    spec_path: Annotated[Path | None, typer.Option("--spec", help="another model.yaml")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False,
) -> None:
    """Train a model from its spec on Ray Train and store the new version."""
    from driftloop.models import ModelStore, TrainingWindow
    from driftloop.training import load_model_spec, train_model

    if gpu not in {"auto", "on", "off"}:
        raise typer.BadParameter("--gpu must be auto, on or off")
    settings = get_settings()
    spec = load_model_spec(spec_path or settings.deploy_dir / "apps" / model / "model.yaml")
    finish = _window_end(end)
    span = TrainingWindow(start=finish - parse_span(window), end=finish)
    store = ModelStore.from_settings(settings)
    if champion == "latest":
        latest = store.latest(spec.name)
        champion = latest.version if latest else None
    if not as_json:
        period = f"{span.start:%Y-%m-%d %H:%M} .. {span.end:%Y-%m-%d %H:%M}"
        typer.echo(f"training {spec.name} on {period} (Ray dashboard: {settings.dashboard_url})")
    result = train_model(
        spec, span, settings, num_workers=workers, cpus_per_worker=cpus_per_worker,
        use_gpu=None if gpu == "auto" else gpu == "on", tune=tune, champion=champion,
        store=store, progress=None if as_json else lambda line: typer.echo(f"  {line}"),
    )  # fmt: skip
    if as_json:
        payload = {"version": result.version, "sha256": result.sha256, "metrics": result.metrics,
                   "baseline": result.baseline_metrics, "champion": result.champion_metrics,
                   "gate": result.gate.model_dump(), "rows": result.rows.model_dump(),
                   "duration_s": result.duration_s}  # fmt: skip
        typer.echo(json.dumps(payload))
        return
    typer.echo(f"trained in {result.train_s:.1f} s ({result.duration_s:.1f} s in all)")
    _metrics_table(result.metrics, result.baseline_metrics, result.champion_metrics)
    for reason in result.gate.reasons:
        typer.echo(f"  gate {reason}")
    typer.echo(f"version: {result.version} (gate {'passed' if result.gate.passed else 'failed'})")


def _metrics_table(
    model: dict[str, float], baseline: dict[str, float], champion: dict[str, float] | None
) -> None:
    columns = [("model", model), ("baseline", baseline)]
    if champion is not None:
        columns.append(("champion", champion))
    typer.echo(f"  {'metric':<24}" + "".join(f"{title:>10}" for title, _ in columns))
    for name in sorted(set().union(*(set(values) for _, values in columns))):
        cells = [values.get(name) for _, values in columns]
        shown = "".join(f"{v:>10.4f}" if v is not None else f"{'-':>10}" for v in cells)
        typer.echo(f"  {name:<24}{shown}")


@model_app.command("list")
def list_versions(model: Annotated[str, typer.Option()] = "fraud") -> None:
    """Versions of a model, oldest first."""
    from driftloop.models import ModelStore

    for summary in ModelStore.from_settings(get_settings()).list(model):
        typer.echo(
            f"{summary.version}  {summary.created_at:%Y-%m-%d %H:%M:%S}  {summary.model_file}"
        )


@model_app.command("show")
def show(
    version: Annotated[str, typer.Argument(help="a version id or 'latest'")] = "latest",
    model: Annotated[str, typer.Option()] = "fraud",
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """What a version is, from its stored metadata alone."""
    from driftloop.models import ModelStore

    store = ModelStore.from_settings(get_settings())
    found = store.latest(model) if version == "latest" else store.get(model, version)
    if found is None:
        typer.secho(f"error: no versions of {model} in {store.uri}", err=True, fg="red")
        raise typer.Exit(1)
    typer.echo(json.dumps(model_card(found), indent=None if as_json else 2, default=str))


def _output(meta: Any) -> dict[str, Any]:
    """What the score, the threshold and the decision mean, from the stored parameters."""
    import numpy as np

    from driftloop.training import unweighted

    recorded = meta.params.get("xgboost")
    weight = float(recorded.get("scale_pos_weight", 1.0)) if isinstance(recorded, dict) else 1.0
    threshold = meta.metrics.get("threshold")
    chosen_on = meta.params.get("threshold_chosen_on", "holdout")
    out: dict[str, Any] = {
        "score": "P(fraud) in [0, 1] from the XGBoost model",
        "decision": "score >= threshold: decline or review",
        "threshold": threshold,
        "threshold_chosen": (
            f"the lowest {chosen_on} score whose precision reaches target_precision; "
            "precision_at_threshold and recall_at_threshold are measured on the holdout"
        ),
        "target_precision": meta.params.get("target_precision"),
        "positive_class_weight": weight,
    }
    if weight != 1.0:
        out["score"] = (
            f"the XGBoost model's logistic output, trained with positive-class weight "
            f"{weight:.1f} (scale_pos_weight): it ranks payments by fraud risk but overstates "
            f"it; P(fraud) = s / (s + {weight:.1f} * (1 - s))"
        )
        if threshold is not None:
            out["threshold_as_probability"] = float(unweighted(np.array([threshold]), weight)[0])
    return out


def model_card(found: Any) -> dict[str, Any]:
    """What an operations team asks of a handed-over model, from stored metadata alone."""
    meta = found.metadata
    features = found.read_features()
    metrics: dict[str, float] = meta.metrics
    table = {
        name: {
            "model": value,
            "baseline": metrics.get(f"baseline_{name}"),
            "champion": metrics.get(f"champion_{name}"),
        }
        for name, value in metrics.items()
        if not name.startswith(("baseline_", "champion_"))
    }
    return {
        "model": meta.model_name, "version": meta.version, "sha256": meta.sha256,
        "created_at": meta.created_at.isoformat(), "model_file": found.model_uri,
        "format": "XGBoost native " + found.model_file.rsplit(".", 1)[-1].upper(),
        # To score it: the booster, and driftloop's encoding of the categorical features.
        "requires": {
            k: v for k, v in meta.packages.items() if k in {"python", "xgboost", "driftloop"}
        },
        "trained_with": meta.packages,
        "git": {"sha": meta.git_sha, "dirty": meta.git_dirty},
        "feature_service": meta.feature_service, "feature_views_hash": meta.feature_views_hash,
        "features": [{"name": f.name, "type": f.type} for f in features.features],
        "preprocessing": features.preprocessing,
        "output": _output(meta),
        "request_schema": meta.request_schema,
        "training_window": meta.training_window.model_dump(mode="json"),
        "rows": meta.rows.model_dump(), "data_hash": meta.data_hash, "seed": meta.seed,
        "metrics": table,
        "gate": meta.gate.model_dump() if meta.gate else None,
        "trigger_event_id": meta.trigger_event_id,
        "references": found.references,
    }  # fmt: skip
