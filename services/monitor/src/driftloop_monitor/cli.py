"""``driftloop-monitor``: run the monitor service."""

from __future__ import annotations

from driftloop.lifecycle import service_cli
from driftloop_monitor._service import MonitorService
from driftloop_monitor._settings import MonitorSettings

app = service_cli(
    summary="predictions (+ labels) → whylogs windows → drift and performance events.",
    run_help="Consume `predictions` and `labels` until SIGTERM/SIGINT (or idle).",
    make=lambda: MonitorService(MonitorSettings()),
)


def main() -> None:
    app(prog_name="driftloop-monitor")


if __name__ == "__main__":
    main()
