"""The incremental window aggregates equal a brute-force recomputation, also with late events."""

from __future__ import annotations

import math
import random

import pytest

from driftloop.features import WINDOWS, CustomerWindows, Point, TooLate

DAY = 86400.0


def _brute(events: list[Point], at: float) -> dict[str, object]:
    def window(span: float) -> list[Point]:
        return [e for e in events if at - span < e.ts <= at]

    w1, w24, w7 = window(WINDOWS["1h"]), window(WINDOWS["24h"]), window(WINDOWS["7d"])
    return {
        "txn_count_1h": len(w1),
        "txn_count_24h": len(w24),
        "txn_count_7d": len(w7),
        "amount_mean_24h": sum(e.amount for e in w24) / len(w24) if w24 else None,
        "amount_max_24h": max((e.amount for e in w24), default=None),
        "amount_mean_7d": sum(e.amount for e in w7) / len(w7) if w7 else None,
        "amount_max_7d": max((e.amount for e in w7), default=None),
        "distinct_merchants_24h": len({e.merchant_id for e in w24}),
        "distinct_devices_7d": len({e.device_id for e in w7 if e.device_id is not None}),
        "foreign_share_7d": sum(e.foreign for e in w7) / len(w7) if w7 else None,
        "online_share_24h": sum(e.online for e in w24) / len(w24) if w24 else None,
    }


def _same(row: dict[str, object], expected: dict[str, object]) -> None:
    for key, value in expected.items():
        got = row[key]
        if isinstance(value, float) and isinstance(got, float):
            assert math.isclose(got, value, rel_tol=1e-9, abs_tol=1e-9), key
        else:
            assert got == value, key


def _events(n: int, seed: int) -> list[Point]:
    rng = random.Random(seed)
    t = 1_700_000_000.0
    out = []
    for i in range(n):
        t += rng.expovariate(1 / 3000)  # about 29 a day, with bursts and gaps
        if rng.random() < 0.05:
            t += 3 * DAY
        out.append(
            Point(
                ts=round(t),
                transaction_id=f"t{i}",
                amount=round(rng.lognormvariate(3, 1), 2),
                merchant_id=f"m{rng.randrange(12)}",
                device_id=rng.choice(["d1", "d2", None, "d3"]),
                foreign=rng.random() < 0.1,
                online=rng.random() < 0.4,
            )
        )
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_in_order_rows_match_brute_force(seed):
    events = _events(600, seed)
    state = CustomerWindows(lateness_s=600)
    for i, event in enumerate(events):
        (row,) = state.observe(event)
        assert row["event_timestamp"] == event.ts
        _same(row, _brute(events[: i + 1], event.ts))


@pytest.mark.parametrize("seed", [4, 5])
def test_late_events_within_lateness_give_a_row_and_a_correction(seed):
    rng = random.Random(seed)
    events = _events(400, seed)
    arrival = events[:]
    # Swap neighbours whose gap is under the lateness: they arrive out of order.
    for i in range(1, len(arrival)):
        if arrival[i].ts - arrival[i - 1].ts < 500 and rng.random() < 0.5:
            arrival[i - 1], arrival[i] = arrival[i], arrival[i - 1]
    state = CustomerWindows(lateness_s=600)
    seen: list[Point] = []
    late = 0
    for event in arrival:
        newest = max((e.ts for e in seen), default=-math.inf)
        rows = state.observe(event)
        seen.append(event)
        if event.ts >= newest:
            assert len(rows) == 1
            _same(rows[0], _brute(seen, event.ts))
        else:
            late += 1
            assert [r["event_timestamp"] for r in rows] == [event.ts, newest]
            _same(rows[0], _brute(seen, event.ts))
            _same(rows[1], _brute(seen, newest))
            assert rows[1]["last_txn_unix"] == newest
    assert late > 5


def test_events_beyond_the_lateness_are_refused_and_duplicates_ignored():
    state = CustomerWindows(lateness_s=60)
    first = Point(1000.0, "a", 10.0, "m", None, False, False)
    assert len(state.observe(first)) == 1
    assert state.observe(first) == []  # a redelivery changes nothing
    state.observe(Point(2000.0, "b", 10.0, "m", None, False, False))
    with pytest.raises(TooLate, match="allowed lateness 60 s"):
        state.observe(Point(1900.0, "c", 10.0, "m", None, False, False))


def test_retained_events_are_bounded_by_the_longest_window_plus_lateness():
    state = CustomerWindows(lateness_s=100)
    for i in range(100):
        state.observe(Point(i * DAY, f"t{i}", 1.0, "m", None, False, False))
    assert all(p.ts > 99 * DAY - 7 * DAY - 100 for p in state.retained)
    assert len(state.retained) == 8  # days 92..99
