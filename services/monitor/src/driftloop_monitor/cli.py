"""``driftloop-monitor``: run the monitor service."""

from __future__ import annotations

from typing import Annotated

import typer

from driftloop.lifecycle import run_service
from driftloop_monitor._service import MonitorService
from driftloop_monitor._settings import MonitorSettings

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False)


@app.callback()
def _root() -> None:
    """predictions (+ labels) → whylogs windows → drift and performance events."""


@app.command()
def run(
    exit_when_idle: Annotated[
        float | None, typer.Option(help="stop after this many seconds without records")
    ] = None,
) -> None:
    """Consume `predictions` and `labels` until SIGTERM/SIGINT (or idle)."""
    run_service(lambda: MonitorService(MonitorSettings()), exit_when_idle)


def main() -> None:
    app(prog_name="driftloop-monitor")


if __name__ == "__main__":
    main()
