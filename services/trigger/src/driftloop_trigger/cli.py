"""``driftloop-trigger``: run the trigger service."""

from __future__ import annotations

import logging
import signal
import threading
from typing import Annotated

import typer

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
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s", force=True
    )
    logging.getLogger("kafka").setLevel(logging.WARNING)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    service = TriggerService(TriggerSettings())
    try:
        service.run(stop, exit_when_idle_s=exit_when_idle)
    finally:
        service.close()


def main() -> None:
    app(prog_name="driftloop-trigger")


if __name__ == "__main__":
    main()
