"""``driftloop-sync run``: keep Ray Serve in step with the serve configs in git."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False)


@app.callback()
def _root() -> None:
    """driftloop's sync service (the local stand-in for ArgoCD + KubeRay)."""


@app.command()
def run(
    once: Annotated[bool, typer.Option(help="one reconcile pass, then exit")] = False,
) -> None:
    """Watch the repository's branch and apply its serve configs to Ray Serve."""
    from driftloop.metrics import serve_metrics
    from driftloop_sync._metrics import SyncMetrics
    from driftloop_sync._service import SyncService
    from driftloop_sync._settings import SyncSettings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = SyncSettings()
    metrics = SyncMetrics()
    if settings.sync_metrics_port:
        serve_metrics(settings, settings.sync_metrics_port, metrics.registry)
    service = SyncService(settings, metrics)
    service.run(once=once)
    if once and service.state.last_error:
        raise typer.Exit(1)


def main() -> None:
    app()
