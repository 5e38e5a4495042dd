"""``driftloop-stream``: run the stream service."""

from __future__ import annotations

from driftloop.lifecycle import service_cli
from driftloop_stream._service import StreamService
from driftloop_stream._settings import StreamSettings

app = service_cli(
    summary="transactions → windowed customer aggregates → Feast online and offline stores.",
    run_help="Consume `transactions` until SIGTERM/SIGINT (or idle), pushing features to Feast.",
    make=lambda: StreamService(StreamSettings()),
)


def main() -> None:
    app(prog_name="driftloop-stream")


if __name__ == "__main__":
    main()
