"""``driftloop-trigger``: run the trigger service."""

from __future__ import annotations

from driftloop.lifecycle import service_cli
from driftloop_trigger._service import TriggerService
from driftloop_trigger._settings import TriggerSettings

app = service_cli(
    summary="drift-events → policy → at most one retraining run per model.",
    run_help="Consume `drift-events` until SIGTERM/SIGINT (or idle), submitting retraining runs.",
    make=lambda: TriggerService(TriggerSettings()),
)


def main() -> None:
    app(prog_name="driftloop-trigger")


if __name__ == "__main__":
    main()
