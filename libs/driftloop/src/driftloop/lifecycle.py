"""How a driftloop service process runs: logging, SIGTERM/SIGINT, run until stopped or
idle, close. Each service's CLI hands :func:`run_service` a factory for its service."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from typing import Annotated, Protocol

import typer


class Service(Protocol):
    def run(self, stop: threading.Event, exit_when_idle_s: float | None = None) -> None: ...

    def close(self) -> None: ...


def run_service(make: Callable[[], Service], exit_when_idle_s: float | None = None) -> None:
    """Build the service (after logging is set up) and run it until SIGTERM/SIGINT, or
    ``exit_when_idle_s`` seconds without records; close it whatever happens."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s", force=True
    )
    logging.getLogger("kafka").setLevel(logging.WARNING)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    service = make()
    try:
        service.run(stop, exit_when_idle_s=exit_when_idle_s)
    finally:
        service.close()


def service_cli(summary: str, run_help: str, make: Callable[[], Service]) -> typer.Typer:
    """The command line of a service: ``<prog> run [--exit-when-idle S]``."""
    app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False)

    @app.callback(help=summary)
    def _root() -> None:
        pass

    @app.command(help=run_help)
    def run(
        exit_when_idle: Annotated[
            float | None, typer.Option(help="stop after this many seconds without records")
        ] = None,
    ) -> None:
        run_service(make, exit_when_idle)

    return app
