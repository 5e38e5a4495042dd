"""The simulator's history: structure, fraud, seasonality, reproducibility, drift scenarios."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from driftloop_simulator import (
    FRAUD_PATTERNS,
    TRANSACTION_COLUMNS,
    BackfillConfig,
    BackfillResult,
    GeneratorConfig,
    ScenarioError,
    WorldConfig,
    backfill,
    choose_scenario,
    load_scenarios,
)
from driftloop_simulator.cli import app
from typer.testing import CliRunner

from driftloop.events import Transaction

END = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday, so 7 or 14 days cover whole weeks
DAY_S = 86_400
SMALL = WorldConfig(seed=3, n_customers=300, n_merchants=80)
ID = re.compile(r"^[A-Za-z0-9._:\-]+$")
TOKEN = re.compile(r"^[a-z0-9_]{1,64}$")


def _run(scenario: str | None = None, strength: float = 1.0, **config) -> BackfillResult:
    """Four days of the default world; a scenario starts after two of them."""
    cfg = BackfillConfig.model_validate({"days": 4, "end": END, **config})
    choice = choose_scenario(scenario, 2 * DAY_S, strength) if scenario else None
    return backfill(cfg, choice)


@pytest.fixture(scope="module")
def base() -> pd.DataFrame:
    return _run().transactions


def _after(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["event_timestamp"] >= pd.Timestamp(END) - pd.Timedelta(days=2)]


def _foreign(df: pd.DataFrame) -> float:
    return float((df["country"] != df["card_country"]).mean())


def test_same_seed_gives_identical_output_and_another_seed_does_not(tmp_path: Path):
    config = BackfillConfig(world=SMALL, days=3, end=END)
    first, second = backfill(config), backfill(config)
    pd.testing.assert_frame_equal(first.transactions, second.transactions)
    a, b = first.write(tmp_path / "a"), second.write(tmp_path / "b")
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]
    other = backfill(config.model_copy(update={"world": SMALL.model_copy(update={"seed": 4})}))
    assert not other.transactions.equals(first.transactions)


def test_a_history_drawn_in_a_fixed_frame_is_the_same_whenever_it_ends():
    """``drawn_at``: the payments, labels and customers of two histories that end at
    different times (hours and days apart) are the same, only moved; without it the
    draws follow the calendar's days, and another end gives other payments."""
    seasonless = GeneratorConfig(weekly=False, daily=False)
    fixed = BackfillConfig(world=SMALL, generator=seasonless, days=3, drawn_at=END, end=END)
    moved_by = pd.Timedelta(days=5, hours=7, minutes=13, seconds=11)
    here = backfill(fixed)
    there = backfill(fixed.model_copy(update={"end": END + moved_by}))
    for column in ("event_timestamp", "label_timestamp"):
        assert (there.transactions[column] - here.transactions[column] == moved_by).all()
    rest = [c for c in TRANSACTION_COLUMNS if c not in ("event_timestamp", "label_timestamp")]
    pd.testing.assert_frame_equal(here.transactions[rest], there.transactions[rest])
    assert (there.customers["joined_at"] - here.customers["joined_at"] == moved_by).all()
    assert there.transactions["event_timestamp"].max() < pd.Timestamp(END + moved_by)
    calendar = backfill(fixed.model_copy(update={"end": END + moved_by, "drawn_at": None}))
    assert len(calendar.transactions) != len(here.transactions) or not calendar.transactions[
        "amount"
    ].equals(here.transactions["amount"])


def test_columns_types_order_and_vocabulary(base: pd.DataFrame):
    assert tuple(base.columns) == TRANSACTION_COLUMNS
    assert base["amount"].dtype == np.float64
    assert base["is_fraud"].dtype == np.bool_
    for column in ("event_timestamp", "label_timestamp"):
        assert str(base[column].dtype) == "datetime64[ns, UTC]"
    assert base["event_timestamp"].is_monotonic_increasing
    assert (base["label_timestamp"] > base["event_timestamp"]).all()
    assert base["transaction_id"].is_unique
    for column in ("transaction_id", "customer_id", "merchant_id"):
        assert base[column].map(lambda v: bool(ID.match(v))).all(), column
    devices = base["device_id"].dropna()
    assert devices.map(lambda v: bool(ID.match(v))).all()
    for column in ("merchant_category", "channel"):
        assert base[column].map(lambda v: bool(TOKEN.match(v))).all(), column
    assert set(base["channel"]) == {"pos", "online"}
    assert (base["fraud_pattern"] != "").equals(base["is_fraud"])
    assert base["event_timestamp"].min() >= pd.Timestamp(END) - pd.Timedelta(days=4)
    assert base["event_timestamp"].max() < pd.Timestamp(END)
    assert 20_000 <= len(base) / 4 <= 30_000


def test_every_row_validates_as_a_transaction():
    df = backfill(BackfillConfig(world=SMALL, days=2, end=END)).transactions
    for row in df.to_dict("records"):
        Transaction(
            transaction_id=row["transaction_id"],
            customer_id=row["customer_id"],
            merchant_id=row["merchant_id"],
            amount=row["amount"],
            currency=row["currency"],
            merchant_category=row["merchant_category"],
            channel=row["channel"],
            country=row["country"],
            card_country=row["card_country"],
            device_id=row["device_id"],
            event_time=row["event_timestamp"].to_pydatetime(),
        )


def test_fraud_rate_is_a_base_rate_with_every_pattern(base: pd.DataFrame):
    assert 0.005 <= base["is_fraud"].mean() <= 0.02
    per_day = base.groupby(base["event_timestamp"].dt.date)["is_fraud"].mean()
    assert per_day.between(0.005, 0.02).all(), per_day
    patterns = set(base.loc[base["is_fraud"], "fraud_pattern"])
    assert patterns == {"card_testing", "foreign_high_amount", "account_takeover"}
    assert patterns < set(FRAUD_PATTERNS)


def test_fraud_patterns_look_like_their_names():
    result = _run()
    df, customers = result.transactions, result.customers
    own = set(customers["primary_device_id"]) | set(customers["secondary_device_id"].dropna())
    legit = df[~df["is_fraud"]]
    assert legit["device_id"].dropna().isin(own).all()

    testing = df[df["fraud_pattern"] == "card_testing"]
    assert (testing["channel"] == "online").all()
    assert not testing["device_id"].isin(own).any()
    bursts = testing.groupby(["customer_id", "device_id"])["event_timestamp"]
    assert (bursts.size() >= 3).all()
    assert (bursts.max() - bursts.min()).max() <= pd.Timedelta(minutes=15)
    assert testing["amount"].median() < 0.2 * legit["amount"].median()

    foreign = df[df["fraud_pattern"] == "foreign_high_amount"]
    assert (foreign["country"] != foreign["card_country"]).mean() > 0.95
    assert foreign["amount"].median() > 10 * legit["amount"].median()

    takeover = df[df["fraud_pattern"] == "account_takeover"]
    assert (takeover["channel"] == "online").all()
    assert not takeover["device_id"].isin(own).any()
    usual = legit.groupby("customer_id")["amount"].median()
    ratio = takeover["amount"].to_numpy() / usual.loc[takeover["customer_id"]].to_numpy()
    assert np.median(ratio) > 3
    seen = set(zip(legit["customer_id"], legit["merchant_id"], strict=True))
    pairs = zip(takeover["customer_id"], takeover["merchant_id"], strict=True)
    assert np.mean([p in seen for p in pairs]) < 0.2


def test_foreign_share_is_higher_among_fraud(base: pd.DataFrame):
    legit, fraud = _foreign(base[~base["is_fraud"]]), _foreign(base[base["is_fraud"]])
    assert legit < 0.15
    assert fraud > 3 * legit


def test_hour_of_day_and_weekday_seasonality():
    df = backfill(
        BackfillConfig(world=SMALL, generator=GeneratorConfig(tx_per_day=8000), days=14, end=END)
    ).transactions
    hours = df["event_timestamp"].dt.hour.value_counts()
    assert hours.loc[[2, 3, 4]].sum() < 0.15 * hours.loc[[14, 15, 16]].sum()
    per_day = df.groupby(df["event_timestamp"].dt.date).size()
    weekday = per_day.groupby(pd.to_datetime(per_day.index).weekday).mean()
    assert weekday.loc[[4, 5]].mean() > 1.15 * weekday.loc[6]


def test_a_seasonless_world_has_days_of_one_size_and_hours_alike():
    generator = GeneratorConfig(tx_per_day=8000, weekly=False, daily=False)
    df = backfill(BackfillConfig(world=SMALL, generator=generator, days=14, end=END)).transactions
    per_day = df.groupby(df["event_timestamp"].dt.date).size().iloc[1:]  # customers joining
    assert per_day.max() < 1.1 * per_day.min(), per_day.to_dict()
    hours = df["event_timestamp"].dt.hour.value_counts()
    assert hours.max() < 1.2 * hours.min(), hours.to_dict()


@pytest.mark.parametrize("weekly", [True, False])
def test_a_warped_stream_carries_the_volume_per_event_day_of_the_history(weekly: bool):
    """A stream at a time warp continues the history's days: on a busy weekday its event
    time runs slower, so a Saturday holds more payments per event-time hour than a Sunday
    — as many as the history's Saturdays held, relative to its average day."""
    from itertools import islice

    from driftloop_simulator import StreamConfig
    from driftloop_simulator._stream import _run_key, _timeline
    from driftloop_simulator._world import build_world

    world_config = WorldConfig(seed=3, n_customers=200, n_merchants=30)
    generator = GeneratorConfig(tx_per_day=1000, fraud_rate=0.0, weekly=weekly)
    # 20 legitimate payments per wall second carrying 1,000 per average event-time day
    config = StreamConfig(world=world_config, generator=generator, rate=20, time_warp=86.4 * 20)
    saturday = pd.Timestamp("2026-03-07", tz="UTC")  # END + 5 days
    drafts = islice(
        _timeline(build_world(world_config), config, _run_key("k"), saturday.value, None), 5000
    )
    times = pd.to_datetime([d[11] for d in drafts], utc=True)
    per_day = pd.Series(1, index=times).groupby(times.date).sum()
    saturday_n, sunday_n = per_day.iloc[0], per_day.iloc[1]
    if weekly:  # Saturday 1.15, Sunday 0.89 of the average day
        assert saturday_n == pytest.approx(1150, rel=0.05) and sunday_n == pytest.approx(
            890, rel=0.05
        )
    else:
        assert saturday_n == pytest.approx(1000, rel=0.05) and sunday_n == pytest.approx(
            1000, rel=0.05
        )


def test_a_warped_stream_continues_a_seasonless_history_with_its_distributions():
    """The demo's world: what the stream sends after the history ends looks like the
    history — amounts to the tail, fraud share, devices, channels, payments
    per customer — so drift the monitor sees is the scenario's, not the simulator's seam.
    The fraud pattern mix is not compared here: episodes are few at this size (card testing
    has 5.5 rows each) and the mix varies by a quarter between draws; at the demo's size
    (1,000 customers, three days at 40 payments/s) card testing is 36 % of the fraud in
    both."""
    from itertools import islice

    from driftloop_simulator import StreamConfig
    from driftloop_simulator._stream import _run_key, _timeline
    from driftloop_simulator._world import build_world

    world = WorldConfig(seed=7, n_customers=400, n_merchants=60)
    generator = GeneratorConfig(tx_per_day=4000, fraud_rate=0.05, weekly=False, daily=False)
    history = backfill(BackfillConfig(world=world, generator=generator, days=6, end=END))
    tx = history.transactions
    tx = tx[tx["event_timestamp"] >= pd.Timestamp(END) - pd.Timedelta(days=3)]
    rate = 40.0
    stream_config = StreamConfig(
        world=world,
        generator=generator.model_copy(update={"fraud_delay_s": 60}),
        rate=rate,
        time_warp=rate / 1.05 * 86_400 / generator.tx_per_day,
    )
    drafts = _timeline(
        build_world(world), stream_config, _run_key("k"), pd.Timestamp(END).value, None
    )
    columns = ["customer_id", "merchant_id", "amount", "currency", "category", "channel",
               "country", "card_country", "device_id", "is_fraud", "pattern", "t"]  # fmt: skip
    live = pd.DataFrame(list(islice(drafts, len(tx))), columns=columns)
    span_days = (live["t"].iloc[-1] - live["t"].iloc[0]) / 86_400e9
    assert span_days == pytest.approx(3, rel=0.05)  # the history's volume per event-time day

    def figures(df: pd.DataFrame) -> dict[str, float]:
        fraud = df["is_fraud"].astype(bool)
        legit = df.loc[~fraud, "amount"]
        return {
            "fraud share": fraud.mean(),
            "legit amount median": legit.median(),
            "legit amount q99": legit.quantile(0.99),
            "online share": (df["channel"] != "pos").mean(),
            "foreign share": (df["country"] != df["card_country"]).mean(),
            "devices per customer": df.groupby("customer_id")["device_id"].nunique().mean(),
            "payments per customer": df.groupby("customer_id").size().mean(),
        }

    before, after = figures(tx), figures(live)
    for name, value in before.items():
        assert after[name] == pytest.approx(value, rel=0.1), (name, value, after[name])


def test_same_customer_and_timestamp_is_possible_but_rare(base: pd.DataFrame):
    shared = base.duplicated(["customer_id", "event_timestamp"], keep=False).mean()
    assert 0 < shared < 0.01


def test_new_customers_first_appear_late_and_not_before_joining():
    # a fifth of the default traffic: every customer still pays within its first days
    generator = GeneratorConfig(tx_per_day=5000)
    result = backfill(BackfillConfig(days=30, end=END, world=SMALL, generator=generator))
    df, customers = result.transactions, result.customers.set_index("customer_id")
    first = df.groupby("customer_id")["event_timestamp"].min()
    new = customers.index[customers["is_new"]]
    assert len(new) > 0
    assert (first.loc[first.index.intersection(new)] >= customers.loc[new, "joined_at"]).all()
    midpoint = pd.Timestamp(END) - pd.Timedelta(days=15)
    assert (first > midpoint).sum() >= 5
    old = first.drop(new, errors="ignore")
    assert (old < pd.Timestamp(END) - pd.Timedelta(days=28)).mean() > 0.95


def test_covariate_shift_scales_the_segment_by_its_factor(base: pd.DataFrame):
    shifted = _run("covariate-shift").transactions
    seg, after = "electronics", _after(shifted)
    ratio = after[after["merchant_category"] == seg]["amount"].mean() / (
        _after(base)[_after(base)["merchant_category"] == seg]["amount"].mean()
    )
    assert ratio == pytest.approx(3.0, rel=0.02)
    other = after["merchant_category"] != seg
    assert after[other]["amount"].sum() == pytest.approx(_after(base)[other]["amount"].sum())
    before = shifted["event_timestamp"] < after["event_timestamp"].min()
    pd.testing.assert_frame_equal(shifted[before], base[before])
    half = _run("covariate-shift", strength=0.5).transactions
    ratio_half = (
        _after(half).query("merchant_category == @seg")["amount"].mean()
        / _after(base).query("merchant_category == @seg")["amount"].mean()
    )
    assert ratio_half == pytest.approx(2.0, rel=0.02)


def test_new_category_produces_values_the_baseline_never_had(base: pd.DataFrame):
    result = _run("new-category")
    df = result.transactions
    for column, value in (("merchant_category", "crypto"), ("channel", "crypto_atm")):
        assert value not in set(base[column])
        rows = df[df[column] == value]
        assert 0.05 < len(rows) / len(_after(df)) < 0.11
        assert rows["event_timestamp"].min() >= _after(df)["event_timestamp"].min()
    assert set(df["merchant_id"]) <= set(result.merchants["merchant_id"])
    row = df[df["channel"] == "crypto_atm"].iloc[0]
    Transaction(
        transaction_id=row["transaction_id"],
        customer_id=row["customer_id"],
        merchant_id=row["merchant_id"],
        amount=row["amount"],
        currency=row["currency"],
        merchant_category=row["merchant_category"],
        channel=row["channel"],
        country=row["country"],
        card_country=row["card_country"],
    )


def test_a_new_category_can_take_fraud_with_it(base: pd.DataFrame):
    df = _run("crypto-cash-out").transactions
    after, before = _after(df), df[~df.index.isin(_after(df).index)]
    crypto = after["merchant_category"] == "crypto"
    fraud = after["is_fraud"].astype(bool)
    assert not (before["merchant_category"] == "crypto").any()
    assert (crypto[fraud]).mean() == 1.0  # fraud_share 1: every fraud after the onset
    assert 0.02 < crypto[~fraud].mean() < 0.045  # share 0.03 of legitimate payments
    assert (after.loc[crypto & fraud, "country"] == after.loc[crypto & fraud, "card_country"]).all()
    assert (
        _run("new-category")
        .transactions.pipe(_after)
        .query("is_fraud")["merchant_category"]
        .ne("crypto")
        .all()
    )  # fraud_share 0 (the default): fraud stays where it was


def test_label_shift_raises_the_fraud_rate(base: pd.DataFrame):
    shifted = _after(_run("label-shift").transactions)
    assert shifted["is_fraud"].mean() > 2.2 * _after(base)["is_fraud"].mean()


def test_concept_drift_fraud_looks_like_legit_at_a_similar_rate(base: pd.DataFrame):
    # Episodes begun before the switch may still run into its first hours; look past them.
    settled = pd.Timestamp(END) - pd.Timedelta(days=1.5)
    drifted = _run("concept-drift").transactions
    before = base[base["event_timestamp"] >= settled]
    after = drifted[drifted["event_timestamp"] >= settled]
    fraud, legit = after[after["is_fraud"]], after[~after["is_fraud"]]
    assert (fraud["fraud_pattern"] == "mimicry").mean() > 0.97
    assert after["is_fraud"].mean() == pytest.approx(before["is_fraud"].mean(), rel=0.3)
    assert abs(_foreign(fraud) - _foreign(legit)) < 0.05
    assert _foreign(before[before["is_fraud"]]) - _foreign(legit) > 0.3
    assert fraud["amount"].median() / legit["amount"].median() == pytest.approx(1.0, rel=0.35)
    assert (fraud["channel"] == "online").mean() == pytest.approx(
        (legit["channel"] == "online").mean(), abs=0.08
    )


def test_strength_zero_changes_nothing():
    # The small world at a fifth of the default traffic: the frames must still be equal
    # row for row, at a fifth of the cost of four default-sized worlds.
    smaller: dict[str, Any] = {"world": SMALL, "generator": {"tx_per_day": 5000}}
    unchanged = _run(**smaller).transactions
    for name in ("covariate-shift", "new-category", "concept-drift", "label-shift"):
        pd.testing.assert_frame_equal(_run(name, strength=0.0, **smaller).transactions, unchanged)


def test_shipped_scenario_file_defines_the_documented_scenarios():
    names = set(load_scenarios().scenarios)
    assert {"covariate-shift", "new-category", "concept-drift", "label-shift"} <= names
    # the learnable ones bench/heal.py runs
    assert {"crypto-cash-out", "gift-card-fraud", "online-takeover"} <= names


def test_unknown_key_in_scenario_file_is_an_error_naming_it(tmp_path: Path):
    path = tmp_path / "scenarios.yaml"
    path.write_text(
        "scenarios:\n  label-shift:\n    kind: label_shift\n    fraud_rate_factr: 3.0\n"
    )
    with pytest.raises(ScenarioError, match="fraud_rate_factr"):
        load_scenarios(path)
    path.write_text("scenarios: {}\nextra_section: 1\n")
    with pytest.raises(ScenarioError, match="extra_section"):
        load_scenarios(path)
    with pytest.raises(ScenarioError, match="unknown scenario 'nope'"):
        choose_scenario("nope")


def test_cli_backfill_writes_the_three_tables(tmp_path: Path):
    args = ["backfill", "--days", "1", "--out", str(tmp_path), "--end", "2026-03-02"]
    args += ["--customers", "100", "--merchants", "40", "--tx-per-day", "2000"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    tables = {p.stem: pd.read_parquet(p) for p in tmp_path.glob("*.parquet")}
    assert set(tables) == {"transactions", "customers", "merchants"}
    assert tuple(tables["transactions"].columns) == TRANSACTION_COLUMNS
    assert {"customer_id", "home_country"} <= set(tables["customers"].columns)
    assert {"merchant_id", "merchant_category", "country"} <= set(tables["merchants"].columns)
    assert str(tables["transactions"]["event_timestamp"].dtype) == "datetime64[ns, UTC]"


def test_the_same_draw_key_streams_the_same_payments_whatever_the_run_id():
    """``--seed`` repeats a demo run: its traffic is keyed by the seed, not by the start
    time that makes its transaction ids unique."""
    from itertools import islice

    from driftloop_simulator import StreamConfig, WorldConfig
    from driftloop_simulator._stream import _run_key, _timeline
    from driftloop_simulator._world import build_world

    world = build_world(WorldConfig(seed=3, n_customers=50, n_merchants=10))
    config = StreamConfig(world=WorldConfig(seed=3, n_customers=50, n_merchants=10), rate=40)
    origin = 1_780_000_000 * 10**9

    def first(key: str) -> list[tuple[object, ...]]:
        # a draft: customer, merchant, amount, ..., is_fraud, pattern, virtual time
        return list(islice(_timeline(world, config, _run_key(key), origin, None), 200))

    assert first("demo-3") == first("demo-3")
    assert first("demo-3") != first("demo-4")
