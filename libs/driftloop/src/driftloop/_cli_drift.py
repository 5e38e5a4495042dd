"""``driftloop drift report``: the monitor's window records as a PNG and an HTML page."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from driftloop.settings import get_settings

drift_app = typer.Typer(help="Drift the monitor measured.", no_args_is_help=True)


@drift_app.command()
def report(
    model: Annotated[str, typer.Option(help="the model whose windows to plot")] = "fraud",
    out: Annotated[
        Path | None, typer.Option(help="output directory (default: <state dir>/reports)")
    ] = None,
    records: Annotated[
        Path | None,
        typer.Option("--dir", help="the monitor's records (default: <state dir>/monitor)"),
    ] = None,
) -> None:
    """Plot the drift statistic per column over time and show the evidence of each event."""
    from driftloop.drift import AuditStore, write_report

    settings = get_settings()
    store = AuditStore((records or settings.state_dir / "monitor").absolute(), model)
    try:
        png, page = write_report(store, model, (out or settings.state_dir / "reports").absolute())
    except FileNotFoundError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=1) from exc
    typer.echo(f"wrote {png}")
    typer.echo(f"wrote {page}")
