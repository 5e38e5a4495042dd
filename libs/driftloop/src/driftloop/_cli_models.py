"""``driftloop train`` and ``driftloop model …``: thin commands over the training library
and the model store."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer

from driftloop.settings import get_settings

model_app = typer.Typer(help="Versions in the model store.", no_args_is_help=True)

_SPAN = re.compile(r"^(\d+)([dh])$")


def parse_span(text: str) -> timedelta:
    """``30d`` or ``12h`` as a timedelta."""
    match = _SPAN.match(text)
    if not match:
        raise typer.BadParameter(f"{text!r}: use a number of days or hours such as 30d or 12h")
    amount, unit = int(match.group(1)), match.group(2)
    return timedelta(days=amount) if unit == "d" else timedelta(hours=amount)


def train(
    model: Annotated[str, typer.Option(help="the model: deploy/apps/<model>/model.yaml")] = "fraud",
    window: Annotated[str, typer.Option(help="how much labelled history, e.g. 30d")] = "30d",
    end: Annotated[str | None, typer.Option(help="window end (ISO, UTC); default now")] = None,
    workers: Annotated[int | None, typer.Option(help="Ray Train workers")] = None,
    gpu: Annotated[str, typer.Option(help="auto|on|off")] = "auto",
    spec_path: Annotated[Path | None, typer.Option("--spec", help="another model.yaml")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False,
) -> None:
    """Train a model from its spec on Ray Train and store the new version."""
    from driftloop.models import TrainingWindow
    from driftloop.training import load_model_spec, train_model

    if gpu not in {"auto", "on", "off"}:
        raise typer.BadParameter("--gpu must be auto, on or off")
    settings = get_settings()
    spec = load_model_spec(spec_path or settings.deploy_dir / "apps" / model / "model.yaml")
    finish = datetime.fromisoformat(end).replace(tzinfo=UTC) if end else datetime.now(UTC)
    span = TrainingWindow(start=finish - parse_span(window), end=finish)
    if not as_json:
        period = f"{span.start:%Y-%m-%d %H:%M} .. {span.end:%Y-%m-%d %H:%M}"
        typer.echo(f"training {spec.name} on {period} (Ray dashboard: {settings.dashboard_url})")
    result = train_model(
        spec, span, settings, num_workers=workers,
        use_gpu=None if gpu == "auto" else gpu == "on",
    )  # fmt: skip
    if as_json:
        payload = {"version": result.version, "sha256": result.sha256, "metrics": result.metrics,
                   "baseline": result.baseline_metrics, "rows": result.rows.model_dump(),
                   "duration_s": result.duration_s}  # fmt: skip
        typer.echo(json.dumps(payload))
        return
    typer.echo(f"rows: {result.labelled_rows:,} labelled → {result.rows.model_dump()}")
    typer.echo(f"trained in {result.train_s:.1f} s ({result.duration_s:.1f} s in all)")
    _metrics_table(result.metrics, result.baseline_metrics)
    typer.echo(f"version: {result.version}")


def _metrics_table(model: dict[str, float], baseline: dict[str, float]) -> None:
    typer.echo(f"  {'metric':<22}{'model':>10}{'baseline':>10}")
    for name in sorted(set(model) | set(baseline)):
        m, b = model.get(name), baseline.get(name)
        shown_m = f"{m:.4f}" if m is not None else "-"
        shown_b = f"{b:.4f}" if b is not None else "-"
        typer.echo(f"  {name:<22}{shown_m:>10}{shown_b:>10}")


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
    meta = found.metadata
    features = found.read_features()
    card: dict[str, Any] = {
        "model": meta.model_name, "version": meta.version, "sha256": meta.sha256,
        "created_at": meta.created_at.isoformat(), "model_file": found.model_uri,
        "git": {"sha": meta.git_sha, "dirty": meta.git_dirty},
        "feature_service": meta.feature_service, "feature_views_hash": meta.feature_views_hash,
        "training_window": meta.training_window.model_dump(mode="json"),
        "rows": meta.rows.model_dump(), "data_hash": meta.data_hash,
        "features": {f.name: f.type for f in features.features},
        "metrics": meta.metrics, "packages": meta.packages, "seed": meta.seed,
        "trigger_event_id": meta.trigger_event_id,
        "gate": meta.gate.model_dump() if meta.gate else None,
        "output": "score = P(fraud) in [0, 1]; decision = score >= threshold "
                  f"(threshold {meta.metrics.get('threshold', 'unset')})",
    }  # fmt: skip
    if as_json:
        typer.echo(json.dumps(card, indent=2, default=str))
        return
    for key, value in card.items():
        typer.echo(f"{key:<20} {value}")
