"""The ``driftloop-simulator`` command: ``backfill`` history to parquet, ``stream`` live traffic."""

from __future__ import annotations

import signal
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from driftloop.kafka import KafkaUnavailable
from driftloop.settings import get_settings
from driftloop_simulator._backfill import BackfillConfig, backfill
from driftloop_simulator._generate import GeneratorConfig
from driftloop_simulator._scenarios import ScenarioChoice, ScenarioError, choose_scenario
from driftloop_simulator._stream import StreamConfig, run_stream
from driftloop_simulator._world import WorldConfig

app = typer.Typer(
    name="driftloop-simulator",
    help="Card-payment traffic with fraud, delayed labels and drift scenarios.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

Seed = Annotated[int, typer.Option(help="same seed, same customers, merchants and history")]
Customers = Annotated[int, typer.Option("--customers", help="number of customers")]
Merchants = Annotated[int, typer.Option("--merchants", help="number of merchants")]
FraudRate = Annotated[float, typer.Option(help="fraud rows per legitimate row")]
Scenario = Annotated[str | None, typer.Option(help="a scenario named in scenarios.yaml")]
Strength = Annotated[float, typer.Option(help="scales the scenario's effect; 0 = none")]
ScenariosFile = Annotated[
    Path | None, typer.Option("--scenarios", help="scenario file (default: the documented one)")
]
Weekly = Annotated[
    bool,
    typer.Option(help="volume follows the weekday; a stream continuing a history needs its value"),
]
Daily = Annotated[
    bool,
    typer.Option(help="payments follow each customer's hours (a stream's are uniform in the day)"),
]


def _fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code=1)


def _scenario(
    name: str | None, after_s: float, strength: float, path: Path | None
) -> ScenarioChoice | None:
    if name is None:
        return None
    try:
        return choose_scenario(name, after_s, strength, path)
    except ScenarioError as exc:
        raise _fail(str(exc)) from exc


UTC_TIMES = ["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"]
"""How --end and --drawn-at are written (read as UTC)."""


@app.command("backfill")
def backfill_command(
    days: Annotated[float, typer.Option(help="days of history")] = 30,
    out: Annotated[
        Path | None, typer.Option(help="output directory (default: <state dir>/data)")
    ] = None,
    end: Annotated[
        datetime | None,
        typer.Option(formats=UTC_TIMES, help="UTC end (default: this hour)"),
    ] = None,
    drawn_at: Annotated[
        datetime | None,
        typer.Option(
            formats=UTC_TIMES,
            help="UTC end the payments are drawn for, then moved to END: the same seed and "
            "DRAWN_AT give the same history whatever END is (for a world without "
            "--weekly/--daily: the cycles move with it)",
        ),
    ] = None,
    seed: Seed = 7,
    n_customers: Customers = 2000,
    n_merchants: Merchants = 300,
    tx_per_day: Annotated[float, typer.Option(help="legitimate payments per day")] = 25_000,
    fraud_rate: FraudRate = 0.01,
    scenario: Scenario = None,
    scenario_start_day: Annotated[float, typer.Option(help="days after the start")] = 0.0,
    strength: Strength = 1.0,
    scenarios: ScenariosFile = None,
    weekly: Weekly = True,
    daily: Daily = True,
) -> None:
    """Write N days of labelled transactions, customers and merchants as parquet."""
    settings = get_settings()
    choice = _scenario(scenario, scenario_start_day * 86_400, strength, scenarios)
    fields: dict[str, object] = {
        "world": WorldConfig(seed=seed, n_customers=n_customers, n_merchants=n_merchants),
        "generator": GeneratorConfig(
            tx_per_day=tx_per_day, fraud_rate=fraud_rate, weekly=weekly, daily=daily
        ),
        "days": days,
    }
    if end is not None:
        fields["end"] = end.replace(tzinfo=UTC)
    if drawn_at is not None:
        fields["drawn_at"] = drawn_at.replace(tzinfo=UTC)
    config = BackfillConfig.model_validate(fields)
    started = time.perf_counter()
    result = backfill(config, choice)
    paths = result.write(out or settings.state_dir / "data")
    tx = result.transactions
    typer.echo(
        f"{len(tx)} transactions ({len(tx) / days:.0f}/day, fraud {tx['is_fraud'].mean():.2%}) "
        f"from {config.start:%Y-%m-%d %H:%M} to {config.end:%Y-%m-%d %H:%M} UTC "
        f"in {time.perf_counter() - started:.1f} s"
    )
    for path in paths:
        typer.echo(f"wrote {path}")


@app.command("stream")
def stream_command(
    rate: Annotated[float, typer.Option(help="transactions per second")] = 100.0,
    duration: Annotated[float | None, typer.Option(help="stop after this many seconds")] = None,
    count: Annotated[int | None, typer.Option(help="stop after this many transactions")] = None,
    label_delay: Annotated[float, typer.Option(help="seconds until a label follows")] = 30.0,
    drain_labels: Annotated[
        bool, typer.Option(help="at the end, wait for the labels still queued")
    ] = True,
    predict_url: Annotated[
        str | None,
        typer.Option(
            help="POST each transaction here before publishing it, with the Serve endpoint's "
            "X-API-Key (DRIFTLOOP_SERVE_API_KEY, else the key file `driftloop up` made)"
        ),
    ] = None,
    predict_timeout: Annotated[float, typer.Option(help="seconds per scoring call")] = 2.0,
    predict_concurrency: Annotated[int, typer.Option(help="scoring calls in flight")] = 4,
    predict_batch: Annotated[
        int, typer.Option(help="payments per scoring call (>1: the endpoint's /batch route)")
    ] = 1,
    seed: Seed = 7,
    n_customers: Customers = 2000,
    n_merchants: Merchants = 300,
    fraud_rate: FraudRate = 0.01,
    scenario: Scenario = None,
    scenario_start: Annotated[float, typer.Option(help="seconds after the start")] = 0.0,
    strength: Strength = 1.0,
    scenarios: ScenariosFile = None,
    progress_every: Annotated[float, typer.Option(help="seconds between progress lines")] = 5.0,
    time_warp: Annotated[
        float, typer.Option(help="virtual seconds per wall second (event_time is virtual)")
    ] = 1.0,
    weekly: Weekly = True,
    customer_gap: Annotated[
        float,
        typer.Option(
            help="wall seconds at least between one customer's payments (for warped time: "
            "the stream's features keep up with each customer)"
        ),
    ] = 0.0,
) -> None:
    """Send transactions to Kafka at RATE/s and their labels LABEL_DELAY seconds later.

    Runs until --duration or --count (or forever); SIGINT/SIGTERM stop it after a flush.
    """
    settings = get_settings()
    choice = _scenario(scenario, scenario_start, strength, scenarios)
    config = StreamConfig(
        world=WorldConfig(seed=seed, n_customers=n_customers, n_merchants=n_merchants),
        generator=GeneratorConfig(fraud_rate=fraud_rate, fraud_delay_s=60, weekly=weekly),
        rate=rate,
        duration_s=duration,
        count=count,
        label_delay_s=label_delay,
        drain_labels=drain_labels,
        predict_url=predict_url,
        predict_timeout_s=predict_timeout,
        predict_concurrency=predict_concurrency,
        predict_batch=predict_batch,
        customer_gap_s=customer_gap,
        progress_every_s=progress_every,
        time_warp=time_warp,
    )
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        typer.echo(f"{signal.Signals(signum).name}: stopping after a flush", err=True)
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        run_stream(settings, config, scenario=choice, stop=stop, echo=typer.echo)
    except KafkaUnavailable as exc:
        raise _fail(str(exc)) from exc
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def main() -> None:
    app()
