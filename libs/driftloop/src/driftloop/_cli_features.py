"""``driftloop features …``: backfill the batch sources, plan/apply the Feast repo, materialize."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from driftloop.settings import get_settings

app = typer.Typer(help="The Feast feature repository and its data.", no_args_is_help=True)


@app.command()
def backfill(
    history: Annotated[
        Path, typer.Option(help="labelled transactions parquet (simulator backfill)")
    ] = Path(".driftloop/data/transactions.parquet"),
) -> None:
    """Compute customer aggregates and merchant snapshots from a history into the batch sources."""
    import pandas as pd

    from driftloop.features import backfill_sources

    settings = get_settings()
    if not history.is_file():
        typer.secho(
            f"error: {history} not found: run the simulator's backfill first", err=True, fg="red"
        )
        raise typer.Exit(1)
    written = backfill_sources(settings, pd.read_parquet(history), datetime.now(UTC))
    for name, (rows, path, seconds) in written.items():
        typer.echo(f"{name}: {rows:,} rows → {path} ({seconds:.1f} s)")


@app.command()
def plan() -> None:
    """`feast plan`: what `apply` would change in the registry and infrastructure."""
    from driftloop.features import feast_cli

    typer.echo(feast_cli(get_settings(), "plan"))


@app.command()
def apply() -> None:
    """`feast apply`: register the definitions and create the online tables (and empty
    batch sources where no data exists yet)."""
    from driftloop.features import apply_repo

    typer.echo(apply_repo(get_settings()))


@app.command()
def materialize() -> None:
    """Load the newest batch feature values into the online store (incrementally)."""
    from driftloop.features import materialize as materialize_until

    typer.echo(materialize_until(get_settings(), datetime.now(UTC)))
