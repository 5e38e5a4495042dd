"""``driftloop-stream``: run the stream service."""

from __future__ import annotations

from typing import Annotated

import typer

from driftloop.lifecycle import run_service
from driftloop_stream._service import StreamService
from driftloop_stream._settings import StreamSettings

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False)


@app.callback()
def _root() -> None:
    """transactions → windowed customer aggregates → Feast online and offline stores."""


@app.command()
def run(
    exit_when_idle: Annotated[
        float | None, typer.Option(help="stop after this many seconds without records")
    ] = None,
) -> None:
    """Consume `transactions` until SIGTERM/SIGINT (or idle), pushing features to Feast."""
    run_service(lambda: StreamService(StreamSettings()), exit_when_idle)


def main() -> None:
    app(prog_name="driftloop-stream")


if __name__ == "__main__":
    main()
