"""The ``driftloop`` command: runs the local stack and inspects it. Services are started as
processes, never imported."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from driftloop import _cli_drift, _cli_features, _cli_models, _cli_runs, _cli_sync
from driftloop.kafka import KafkaUnavailable, describe_topics, ensure_topics
from driftloop.ports import PortInUse
from driftloop.schemas import write_schemas
from driftloop.settings import get_settings
from driftloop.stack import LocalStack, MissingPrerequisite

app = typer.Typer(
    name="driftloop",
    help="driftloop: event-driven retraining with git as the record of what runs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

app.add_typer(_cli_drift.drift_app, name="drift")
app.add_typer(_cli_features.app, name="features")
app.add_typer(_cli_models.model_app, name="model")
app.command(name="train")(_cli_models.train)
app.command(name="retrain")(_cli_runs.retrain)
app.command(name="promote")(_cli_runs.promote)
app.add_typer(_cli_runs.runs_app, name="runs")
app.add_typer(_cli_sync.sync_app, name="sync")

_EXPECTED = (KafkaUnavailable, MissingPrerequisite, PortInUse, FileNotFoundError, RuntimeError)


def _fail(exc: Exception) -> typer.Exit:
    typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
    return typer.Exit(code=1)


@app.command()
def up() -> None:
    """Start what the settings say driftloop runs (Kafka, Ray, Serve's proxy); idempotent."""
    settings = get_settings()
    try:
        LocalStack(settings).up(typer.echo)
    except _EXPECTED as exc:
        raise _fail(exc) from exc
    typer.echo(f"ray dashboard: {settings.dashboard_url}")
    typer.echo(f"serve endpoint: {settings.serve_url}")
    if settings.ray_managed and settings.serve_auth == "key" and settings.serve_api_key is None:
        typer.echo(f"serve API key: {settings.serve_api_key_path} (send it as X-API-Key)")


services_app = typer.Typer(help="The loop's services: stream, monitor, trigger, sync.")
app.add_typer(services_app, name="services")


@services_app.command("start")
def services_start() -> None:
    """Start the loop's services under the stack's supervisord (logs in .driftloop/logs)."""
    try:
        LocalStack(get_settings()).start_services(typer.echo)
    except _EXPECTED as exc:
        raise _fail(exc) from exc


@services_app.command("stop")
def services_stop() -> None:
    """Stop the loop's services (the stack keeps running)."""
    try:
        LocalStack(get_settings()).stop_services(typer.echo)
    except _EXPECTED as exc:
        raise _fail(exc) from exc


@app.command()
def down() -> None:
    """Stop what `driftloop up` started; existing clusters the settings point to are left alone."""
    try:
        LocalStack(get_settings()).down(typer.echo)
    except _EXPECTED as exc:
        raise _fail(exc) from exc


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Report each component (up/down, address); exit 1 if Kafka, Ray or Serve is down."""
    try:
        components = LocalStack(get_settings()).status()
    except _EXPECTED as exc:
        raise _fail(exc) from exc
    if as_json:
        typer.echo(json.dumps([c.as_dict() for c in components], indent=2))
    else:
        for c in components:
            mark = (
                typer.style("up  ", fg=typer.colors.GREEN)
                if c.up
                else typer.style("down", fg=typer.colors.RED)
            )
            who = "local" if c.managed else "external"
            typer.echo(f"{mark}  {c.name:<12} {c.address:<40} ({who})")
            for key, value in c.detail.items():
                if key == "topics":
                    for name, info in value.items():
                        typer.echo(
                            f"        topic {name:<32} partitions={info['partitions']} "
                            f"end_offsets={info['end_offsets']}"
                        )
                elif value not in (None, {}, ""):
                    typer.echo(f"        {key}: {value}")
    if not all(c.up for c in components if c.name != "supervisord"):
        raise typer.Exit(code=1)


@app.command()
def topics(
    create: Annotated[bool, typer.Option(help="create missing topics first")] = True,
) -> None:
    """List driftloop's topics with partitions and end offsets (creating missing ones)."""
    settings = get_settings()
    try:
        if create:
            for name in ensure_topics(settings):
                typer.echo(f"created {name}")
        infos = describe_topics(settings)
    except KafkaUnavailable as exc:
        raise _fail(exc) from exc
    for info in infos:
        typer.echo(
            f"{info.name:<34} partitions={info.partitions} messages={info.messages} "
            f"end_offsets={info.end_offsets}"
        )


@app.command()
def schemas(
    out: Annotated[Path, typer.Option(help="directory to write into")] = Path("schemas"),
) -> None:
    """Write the JSON Schema of every event contract."""
    for path in write_schemas(out):
        typer.echo(str(path))


def main() -> None:
    app(prog_name="driftloop")


if __name__ == "__main__":
    main()
