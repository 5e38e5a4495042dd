"""``driftloop features …``: backfill the batch sources, plan/apply the Feast repo, materialize."""

from __future__ import annotations

import time
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

    from driftloop.features import SCHEMAS, customer_aggregates, merchant_stats, write_batch

    settings = get_settings()
    if not history.is_file():
        typer.secho(
            f"error: {history} not found: run the simulator's backfill first", err=True, fg="red"
        )
        raise typer.Exit(1)
    frame = pd.read_parquet(history)
    created = datetime.now(UTC)
    started = time.perf_counter()
    aggregates = customer_aggregates(frame, created)
    path = write_batch(
        aggregates,
        f"{settings.feature_data}/customer_aggregates",
        "backfill",
        SCHEMAS["customer_aggregates"],
    )
    typer.echo(f"customer_aggregates: {len(aggregates):,} rows → {path} "
               f"({time.perf_counter() - started:.1f} s)")  # fmt: skip
    started = time.perf_counter()
    merchants = merchant_stats(frame, created)
    path = write_batch(
        merchants, f"{settings.feature_data}/merchant_stats", "backfill", SCHEMAS["merchant_stats"]
    )
    typer.echo(
        f"merchant_stats: {len(merchants):,} rows → {path} ({time.perf_counter() - started:.1f} s)"
    )


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
    from driftloop.features import feast_cli

    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    typer.echo(feast_cli(get_settings(), "materialize-incremental", now))
