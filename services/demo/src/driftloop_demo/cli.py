"""``driftloop-demo run``: the whole loop, with live progress, a summary and a report."""

from __future__ import annotations

import signal
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from driftloop.settings import get_settings
from driftloop_demo._config import DemoConfig
from driftloop_demo._faults import FAULTS
from driftloop_demo._loop import run_demo
from driftloop_demo._report import summary_lines, write_report

app = typer.Typer(
    name="driftloop-demo",
    help="The whole retraining loop on the local stack.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


@app.callback()
def _group() -> None:
    """The whole retraining loop on the local stack."""


@app.command("run")
def run(
    scenario: Annotated[
        str, typer.Option(help="a drift scenario of the simulator's scenarios.yaml")
    ] = "crypto-cash-out",
    strength: Annotated[float, typer.Option(help="scales the scenario's effect")] = 1.0,
    rate: Annotated[float, typer.Option(help="payments per second through the endpoint")] = 40.0,
    onset: Annotated[float, typer.Option(help="seconds of traffic before the drift")] = 60.0,
    timeout: Annotated[float, typer.Option(help="give up after this many seconds")] = 900.0,
    replicas: Annotated[int, typer.Option(help="Serve replicas of the model")] = 1,
    seed: Annotated[
        int, typer.Option(help="the simulated world and its traffic: same seed, same run")
    ] = 7,
    kill: Annotated[
        str,
        typer.Option(
            help="comma-separated parts to SIGKILL once mid-loop and bring back: "
            "stream, replica, monitor, trigger, sync, or 'all'"
        ),
    ] = "",
    out: Annotated[
        Path | None, typer.Option(help="where the demo keeps its state (default <state>/demo)")
    ] = None,
    shadow: Annotated[
        bool,
        typer.Option(
            help="the retraining run declares its challenger as the shadow (a commit to "
            "retrain.yaml: promote_as: shadow); wait until the monitor's live verdict on it "
            "is committed: promoted, or removed"
        ),
    ] = False,
    seasonal: Annotated[
        bool,
        typer.Option(
            help="a world with weekly and daily cycles; its seam with the uniform stream "
            "reads as drift (see DemoConfig.seasonal)"
        ),
    ] = False,
) -> None:
    """Run the loop and wait until it closes: drift → retraining → promotion → v2 serving
    (with --shadow: → v2 in shadow → live verdict → its promotion or removal)."""
    signal.signal(signal.SIGTERM, _interrupt)  # stop the services on `kill` as on Ctrl-C
    settings = get_settings()
    faults = FAULTS if kill == "all" else tuple(n.strip() for n in kill.split(",") if n.strip())
    config = DemoConfig(
        scenario=scenario,
        strength=strength,
        rate=rate,
        onset_s=onset,
        timeout_s=timeout,
        replicas=replicas,
        seed=seed,
        faults=faults,
        seasonal=seasonal,
        shadow=shadow,
    )
    root = (out or settings.state_dir / "demo").absolute()
    result = run_demo(settings, config, root, echo=typer.echo)
    result.report = write_report(result, root / "report")
    for line in summary_lines(result):
        typer.echo(line)
    if not result.closed:
        raise typer.Exit(1)


def main() -> None:
    app()
