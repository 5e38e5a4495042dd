"""Traffic for a window of time: legitimate payments, fraud episodes, scenario effects.

Every window draws from its own generator seeded by (seed, kind, window), so windows do not
depend on each other and a scenario changes only the windows it is active in.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from driftloop_simulator._catalog import (
    BASE_PATTERN_MIX,
    COUNTRIES,
    HOUR_CUM,
    NS_PER_DAY,
    NS_PER_S,
    WEEKDAY_FACTOR,
    IntArray,
    country_codes,
    currencies,
    per_eur,
)
from driftloop_simulator._fraud import fraud_rows
from driftloop_simulator._rows import MAX_EUR, MIN_EUR, Rows, habitual_rows, usual_devices
from driftloop_simulator._scenarios import ActiveScenario, CovariateShift, NewCategory
from driftloop_simulator._world import World

BACKFILL, STREAM, SCENARIO, WARMUP = 1, 2, 3, 4
"""Streams of randomness, so a window of one never shares draws with another."""


class GeneratorConfig(BaseModel):
    """How much traffic, and how much of it is fraud."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tx_per_day: float = Field(25_000, gt=0, description="legitimate payments per average day")
    fraud_rate: float = Field(0.01, ge=0, le=0.5, description="fraud rows per legitimate row")
    fraud_delay_s: float = Field(
        4 * 3600, ge=0, description="mean delay of the later half of fraud episodes"
    )
    weekly: bool = Field(
        True,
        description="volume follows the weekday (Friday and Saturday busiest); without it "
        "every day carries tx_per_day. A live stream that continues a history must use the "
        "history's setting, or the 24 h and 7 d aggregates jump where one meets the other",
    )
    daily: bool = Field(
        True,
        description="a history's payments follow each customer's hours (quiet nights, an "
        "evening peak); without it they are uniform over the day, as a live stream's always "
        "are. A history that a stream continues needs daily=False: otherwise the hours, and "
        "with them a model's scores, change where the stream takes over",
    )

    def day_factor(self, day_start_ns: int) -> float:
        """The volume of the UTC day holding ``day_start_ns``, relative to the average day."""
        if not self.weekly:
            return 1.0
        return float(WEEKDAY_FACTOR[(day_start_ns // NS_PER_DAY + 3) % 7])  # 1970-01-01: Thu


def window_rows(
    world: World,
    rng: np.random.Generator,
    legit_c: IntArray,
    legit_t: IntArray,
    span: tuple[int, int],
    config: GeneratorConfig,
    scenario: ActiveScenario | None,
    scenario_rng: np.random.Generator,
) -> Rows:
    """Legitimate rows for the given customers and times, plus fraud and scenario effects.

    Fraud episodes are generated per part of ``span`` before and after the scenario starts,
    so a rate or pattern change takes effect exactly at its start.
    """
    parts = [habitual_rows(world, rng, legit_c, legit_t)]
    t0, t1 = span
    cuts = [t0, t1]
    if scenario is not None and t0 < scenario.start_ns < t1:
        cuts = [t0, scenario.start_ns, t1]
    for a, b in itertools.pairwise(cuts):
        inside = (legit_t >= a) & (legit_t < b)
        active = scenario is not None and a >= scenario.start_ns
        rate = config.fraud_rate * (scenario.fraud_rate_factor if scenario and active else 1.0)
        mix = scenario.pattern_mix(BASE_PATTERN_MIX) if scenario and active else BASE_PATTERN_MIX
        expected = rate * float(inside.sum())
        anchors_c, anchors_t = legit_c[inside], legit_t[inside]
        parts.append(
            fraud_rows(world, rng, anchors_c, anchors_t, expected, mix, config.fraud_delay_s)
        )
    rows = Rows.concat(parts)
    if scenario is not None:
        rows = apply_scenario(world, rows, scenario, scenario_rng)
    return rows


def backfill_day(
    world: World,
    config: GeneratorConfig,
    day_start_ns: int,
    history: tuple[int, int],
    scenario: ActiveScenario | None,
) -> Rows:
    """One UTC calendar day: per-customer Poisson counts with weekly and daily seasonality
    (each unless the config turns it off).

    Customers who join during the ``history`` (start, span) pay only after they joined.
    """
    day = day_start_ns // NS_PER_DAY
    seed = world.config.seed
    rng = np.random.default_rng([seed, BACKFILL, day])
    per_customer = config.tx_per_day / world.n_customers * config.day_factor(day_start_ns)
    lam = world.c_activity * per_customer
    counts = rng.poisson(lam)
    customers = np.repeat(np.arange(world.n_customers, dtype=np.int64), counts)
    if config.daily:
        hour = np.searchsorted(HOUR_CUM, rng.random(len(customers)), side="right")
        hour = (hour + world.c_hour_shift[customers]) % 24
        second = hour * 3600 + rng.integers(0, 3600, len(customers))
    else:
        second = rng.integers(0, 86_400, len(customers))
    t = day_start_ns + second.astype(np.int64) * NS_PER_S
    start, span = history
    joined = start + (world.c_join_frac * span).astype(np.int64)
    keep = t >= joined[customers]
    return window_rows(
        world,
        rng,
        customers[keep],
        t[keep],
        (day_start_ns, day_start_ns + NS_PER_DAY),
        config,
        scenario,
        np.random.default_rng([seed, SCENARIO, day]),
    )


def stream_window(
    world: World,
    config: GeneratorConfig,
    run_key: int,
    index: int,
    span: tuple[int, int],
    n_legit: int,
    scenario: ActiveScenario | None,
) -> Rows:
    """``n_legit`` payments by customers drawn by activity, uniform in ``span``, plus fraud."""
    seed = world.config.seed
    rng = np.random.default_rng([seed, STREAM, run_key, index])
    cum = np.cumsum(world.c_activity) / world.c_activity.sum()
    customers = np.minimum(
        np.searchsorted(cum, rng.random(n_legit), side="right"), world.n_customers - 1
    ).astype(np.int64)
    t = np.sort(rng.integers(span[0], span[1], n_legit)).astype(np.int64)
    scenario_rng = np.random.default_rng([seed, SCENARIO, run_key, index])
    return window_rows(world, rng, customers, t, span, config, scenario, scenario_rng)


def stream_warmup(
    world: World, config: GeneratorConfig, run_key: int, origin_ns: int, per_second: int
) -> Rows:
    """Fraud rows at or after ``origin_ns`` from episodes begun in the hour before it.

    Episodes last up to about an hour, so without this a stream would start with a fraud
    rate that only reaches its steady level after an hour.
    """
    seed, warmup_s = world.config.seed, 3600
    rng = np.random.default_rng([seed, WARMUP, run_key])
    n = min(per_second * warmup_s, 20_000)
    cum = np.cumsum(world.c_activity) / world.c_activity.sum()
    anchors_c = np.minimum(
        np.searchsorted(cum, rng.random(n), side="right"), world.n_customers - 1
    ).astype(np.int64)
    anchors_t = rng.integers(origin_ns - warmup_s * NS_PER_S, origin_ns, n).astype(np.int64)
    expected = config.fraud_rate * per_second * warmup_s
    rows = fraud_rows(
        world, rng, anchors_c, anchors_t, expected, BASE_PATTERN_MIX, config.fraud_delay_s
    )
    return rows.select(rows.t >= origin_ns)


def new_merchant_ids(category: str, home: IntArray) -> list[str]:
    """Ids of the merchants a new-category scenario creates: one per home country."""
    codes = country_codes()[home]
    return [f"mer-{category}-{code.lower()}" for code in codes]


def scenario_merchants(scenario: ActiveScenario | None) -> pd.DataFrame:
    """The merchants a scenario adds to the world (none unless it is ``new_category``)."""
    spec = scenario.spec if scenario else None
    if not isinstance(spec, NewCategory):
        return pd.DataFrame()
    homes = np.array([i for i, c in enumerate(COUNTRIES) if c.customer_weight > 0])
    return pd.DataFrame(
        {
            "merchant_id": new_merchant_ids(spec.merchant_category, homes),
            "merchant_category": spec.merchant_category,
            "country": country_codes()[homes],
            "currency": currencies()[homes],
            "channels": spec.channel,
            "popularity": 1.0,
            "price_level": 1.0,
        }
    )


def apply_scenario(
    world: World, rows: Rows, scenario: ActiveScenario, rng: np.random.Generator
) -> Rows:
    """The row-level effects of a scenario on rows at or after its start."""
    after = rows.t >= scenario.start_ns
    spec = scenario.spec
    if isinstance(spec, CovariateShift):
        column = spec.segment.column
        values = (
            country_codes()[world.c_home[rows.customer]]
            if column == "card_country"
            else getattr(rows, column)
        )
        hit = after & (values == spec.segment.value)
        scaled = np.clip(np.round(rows.amount * scenario.amount_factor, 2), 0.01, 999_999.0)
        return rows.with_columns(amount=np.where(hit, scaled, rows.amount))
    if isinstance(spec, NewCategory):
        draw = rng.random(len(rows))
        share = np.where(
            rows.is_fraud, scenario.new_category_fraud_share, scenario.new_category_share
        )
        hit = after & (draw < share)
        if not hit.any():
            return rows
        idx = np.flatnonzero(hit)
        customers = rows.customer[idx]
        home = world.c_home[customers]
        eur = np.clip(
            spec.amount_median_eur * np.exp(spec.amount_sigma * rng.standard_normal(len(idx))),
            MIN_EUR,
            MAX_EUR,
        )
        devices = usual_devices(world, rng, customers) if spec.channel == "online" else None

        def put(column: str, values: object) -> None:
            array = getattr(rows, column).copy()
            array[idx] = values
            changed[column] = array

        changed: dict[str, object] = {}
        put("merchant_id", new_merchant_ids(spec.merchant_category, home))
        put("merchant_category", spec.merchant_category)
        put("channel", spec.channel)
        put("country", country_codes()[home])
        put("currency", currencies()[home])
        put("device_id", devices)
        put("amount", np.maximum(np.round(eur * per_eur()[home], 2), 0.01))
        return rows.with_columns(**changed)
    return rows
