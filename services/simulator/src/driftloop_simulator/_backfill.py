"""History: N days of labelled transactions, with the customer and merchant tables, as parquet."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from driftloop_simulator._catalog import NS_PER_DAY, NS_PER_S
from driftloop_simulator._generate import GeneratorConfig, backfill_day, scenario_merchants
from driftloop_simulator._rows import Rows
from driftloop_simulator._scenarios import ScenarioChoice
from driftloop_simulator._world import World, WorldConfig, build_world

TRANSACTION_COLUMNS: tuple[str, ...] = (
    "transaction_id",
    "customer_id",
    "merchant_id",
    "amount",
    "currency",
    "merchant_category",
    "channel",
    "country",
    "card_country",
    "device_id",
    "event_timestamp",
    "is_fraud",
    "label_timestamp",
    "fraud_pattern",
)
LABEL_RNG = 4


def _this_hour() -> datetime:
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0)


class BackfillConfig(BaseModel):
    """What history to generate. ``end`` defaults to the start of the current UTC hour, so
    a stream started next continues the history; pin it for byte-identical reruns."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    world: WorldConfig = WorldConfig()
    generator: GeneratorConfig = GeneratorConfig()
    days: float = Field(30, gt=0)
    end: datetime = Field(default_factory=_this_hour)
    drawn_at: datetime | None = Field(
        None,
        description="draw the history as if it ended here, then move it whole to end at "
        "``end``: the same seed gives the same payments whenever it is generated (the "
        "calendar's weekly and daily cycles move with it, so use it for a seasonless "
        "world). None: drawn where it lies, each UTC day from its own date",
    )
    fraud_label_delay_days: float = Field(
        2.0, gt=0, description="median delay until a chargeback (lognormal, 2 h to 30 days)"
    )
    legit_label_delay_days: float = Field(
        3.0, ge=0, description="after this long without a chargeback a payment counts as legit"
    )

    @property
    def start(self) -> datetime:
        return self.end - timedelta(days=self.days)

    @property
    def drawn_end(self) -> datetime:
        """The end of the frame the payments are drawn in."""
        return self.drawn_at or self.end


@dataclass(frozen=True)
class BackfillResult:
    transactions: pd.DataFrame
    customers: pd.DataFrame
    merchants: pd.DataFrame

    def write(self, out_dir: Path) -> list[Path]:
        """Write the three tables as parquet into ``out_dir`` (created if missing)."""
        out_dir.mkdir(parents=True, exist_ok=True)
        paths = []
        for name, frame in (
            ("transactions", self.transactions),
            ("customers", self.customers),
            ("merchants", self.merchants),
        ):
            path = out_dir / f"{name}.parquet"
            frame.to_parquet(path, engine="pyarrow", index=False)
            paths.append(path)
        return paths


def _ns(value: datetime) -> int:
    if value.tzinfo is None:
        raise ValueError("backfill times must be timezone-aware")
    return int(pd.Timestamp(value).tz_convert("UTC").value)


def _label_times(config: BackfillConfig, frame: pd.DataFrame) -> pd.Series:
    """Chargebacks arrive after a lognormal delay; legit rows after a fixed quiet period."""
    rng = np.random.default_rng([config.world.seed, LABEL_RNG, _ns(config.drawn_end) // NS_PER_S])
    fraud = frame["is_fraud"].to_numpy()
    median_s = config.fraud_label_delay_days * 86_400
    chargeback = np.clip(rng.lognormal(np.log(median_s), 0.8, len(frame)), 7_200, 30 * 86_400)
    delay_s = np.where(fraud, np.round(chargeback), config.legit_label_delay_days * 86_400)
    delay = pd.to_timedelta(delay_s.astype(np.int64), unit="s")
    return frame["event_timestamp"] + delay


def backfill(
    config: BackfillConfig, scenario: ScenarioChoice | None = None, world: World | None = None
) -> BackfillResult:
    """Generate the history in memory: transactions sorted by ``event_timestamp``.

    A ``scenario`` starts ``scenario.after_s`` seconds after the start of the history.
    """
    world = world or build_world(config.world)
    first_ns, span = _ns(config.start), _ns(config.end) - _ns(config.start)
    end_ns = _ns(config.drawn_end)  # the draws' own frame
    start_ns = end_ns - span
    active = scenario.starting_at(start_ns) if scenario else None
    history = (start_ns, span)
    first_day = start_ns - start_ns % NS_PER_DAY
    days = [
        backfill_day(world, config.generator, day, history, active)
        for day in range(first_day, end_ns, NS_PER_DAY)
    ]
    rows = Rows.concat(days)
    rows = rows.select((rows.t >= start_ns) & (rows.t < end_ns))
    frame = rows.frame(world)
    frame["event_timestamp"] += pd.Timedelta(first_ns - start_ns, unit="ns")
    seed = config.world.seed
    frame.insert(0, "transaction_id", [f"tx-b{seed}-{i:08d}" for i in range(len(frame))])
    frame["label_timestamp"] = _label_times(config, frame)
    merchants = world.merchants_frame()
    extra = scenario_merchants(active)
    if len(extra):
        merchants = pd.concat([merchants, extra], ignore_index=True)
    return BackfillResult(
        transactions=frame[list(TRANSACTION_COLUMNS)].reset_index(drop=True),
        customers=world.customers_frame(first_ns, span),
        merchants=merchants,
    )
