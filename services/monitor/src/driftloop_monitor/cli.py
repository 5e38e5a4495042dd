"""``driftloop-monitor``: run the monitor service."""

from __future__ import annotations

import logging
import signal
import threading
from typing import Annotated

import typer

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
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s", force=True
    )
    logging.getLogger("kafka").setLevel(logging.WARNING)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    service = MonitorService(MonitorSettings())
    try:
        service.run(stop, exit_when_idle_s=exit_when_idle)
    finally:
        service.close()


def main() -> None:
    app(prog_name="driftloop-monitor")


if __name__ == "__main__":
    main()
