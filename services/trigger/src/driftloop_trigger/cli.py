"""``driftloop-trigger``: run the trigger service."""

from __future__ import annotations

from typing import Annotated

import typer

from driftloop.lifecycle import run_service
from driftloop_trigger._service import TriggerService
from driftloop_trigger._settings import TriggerSettings

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False)


@app.callback()
def _root() -> None:
    """drift-events → policy → at most one retraining run per model (local executor or Argo)."""


@app.command()
def run(
    exit_when_idle: Annotated[
        float | None, typer.Option(help="stop after this many seconds without records")
    ] = None,
) -> None:
    """Consume `drift-events` until SIGTERM/SIGINT (or idle), submitting retraining runs."""
    run_service(lambda: TriggerService(TriggerSettings()), exit_when_idle)


def main() -> None:
    app(prog_name="driftloop-trigger")


if __name__ == "__main__":
    main()
