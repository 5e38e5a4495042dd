"""Per-customer event-time window aggregates, computed incrementally.

One implementation serves the stream service and the history backfill, so online and
offline features agree by construction. A window of span S at time t holds the customer's
transactions with timestamps in (t - S, t]: a feature row stamped t describes the customer
*including* the transaction at t. Training joins features as of just before each
transaction (see ``training_entities``), which is what serving sees: the payment system asks
for a score before the transaction reaches the stream.
"""

from __future__ import annotations

import bisect
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any

HOUR = 3600.0
DAY = 24 * HOUR
WINDOWS: dict[str, float] = {"1h": HOUR, "24h": DAY, "7d": 7 * DAY}

CUSTOMER_FEATURES: tuple[str, ...] = (
    "txn_count_1h",
    "txn_count_24h",
    "txn_count_7d",
    "amount_mean_24h",
    "amount_max_24h",
    "amount_mean_7d",
    "amount_max_7d",
    "distinct_merchants_24h",
    "distinct_devices_7d",
    "foreign_share_7d",
    "online_share_24h",
    "last_txn_unix",
)


class TooLate(ValueError):
    """An event older than the allowed lateness behind the customer's newest event."""


@dataclass(frozen=True, slots=True)
class Point:
    """What the aggregates need of one transaction."""

    ts: float  # event time, unix seconds
    transaction_id: str
    amount: float
    merchant_id: str
    device_id: str | None
    foreign: bool
    online: bool


class _Window:
    __slots__ = (
        "amount_sum",
        "devices",
        "events",
        "foreign",
        "maxq",
        "merchants",
        "online",
        "span",
    )

    def __init__(self, span: float) -> None:
        self.span = span
        self.events: deque[Point] = deque()
        self.maxq: deque[Point] = deque()  # strictly decreasing amounts: the max is maxq[0]
        self.amount_sum = 0.0
        self.foreign = 0
        self.online = 0
        self.merchants: Counter[str] = Counter()
        self.devices: Counter[str] = Counter()

    def add(self, p: Point) -> None:
        self.evict(p.ts)
        self.events.append(p)
        self.amount_sum += p.amount
        self.foreign += p.foreign
        self.online += p.online
        self.merchants[p.merchant_id] += 1
        if p.device_id is not None:
            self.devices[p.device_id] += 1
        while self.maxq and self.maxq[-1].amount <= p.amount:
            self.maxq.pop()
        self.maxq.append(p)

    def evict(self, now: float) -> None:
        horizon = now - self.span
        while self.events and self.events[0].ts <= horizon:
            p = self.events.popleft()
            self.amount_sum -= p.amount
            self.foreign -= p.foreign
            self.online -= p.online
            _decrement(self.merchants, p.merchant_id)
            if p.device_id is not None:
                _decrement(self.devices, p.device_id)
            if self.maxq and self.maxq[0] is p:
                self.maxq.popleft()
        if not self.events:
            self.amount_sum = 0.0  # no float residue once empty

    @property
    def count(self) -> int:
        return len(self.events)

    def mean(self) -> float | None:
        return self.amount_sum / len(self.events) if self.events else None

    def max(self) -> float | None:
        return self.maxq[0].amount if self.maxq else None


def _decrement(counter: Counter[str], key: str) -> None:
    counter[key] -= 1
    if counter[key] <= 0:
        del counter[key]


class CustomerWindows:
    """The windows of one customer, with the events kept for late arrivals."""

    def __init__(self, lateness_s: float) -> None:
        self.lateness_s = lateness_s
        self._windows = {name: _Window(span) for name, span in WINDOWS.items()}
        self._retained: list[Point] = []  # sorted by ts; spans 7 d + lateness
        self._ids: set[str] = set()
        self.last_ts = float("-inf")

    @property
    def retained(self) -> list[Point]:
        return self._retained

    def observe(self, p: Point) -> list[dict[str, Any]]:
        """Add a transaction; return the feature rows it produces (none for a duplicate).

        In order: one row at ``p.ts``. Late but within the allowed lateness: a row at
        ``p.ts`` and a corrected row at the newest event's time.
        """
        if p.transaction_id in self._ids:
            return []
        if p.ts >= self.last_ts:
            self._ids.add(p.transaction_id)
            self._retained.append(p)
            self._trim(p.ts)
            for window in self._windows.values():
                window.add(p)
            self.last_ts = p.ts
            return [self._row(p.ts)]
        if p.ts < self.last_ts - self.lateness_s:
            raise TooLate(
                f"transaction {p.transaction_id} at {p.ts:.0f} is {self.last_ts - p.ts:.0f} s "
                f"behind the customer's newest event (allowed lateness {self.lateness_s:.0f} s)"
            )
        self._ids.add(p.transaction_id)
        bisect.insort_right(self._retained, p, key=lambda q: q.ts)
        return self._rebuild(p)

    def _rebuild(self, late: Point) -> list[dict[str, Any]]:
        newest = self.last_ts
        self._windows = {name: _Window(span) for name, span in WINDOWS.items()}
        rows = []
        for q in self._retained:
            for window in self._windows.values():
                window.add(q)
            if q is late:
                self.last_ts = q.ts
                rows.append(self._row(q.ts))
        self.last_ts = newest
        for window in self._windows.values():
            window.evict(newest)
        rows.append(self._row(newest))
        return rows

    def _trim(self, now: float) -> None:
        horizon = now - WINDOWS["7d"] - self.lateness_s
        cut = 0
        while cut < len(self._retained) and self._retained[cut].ts <= horizon:
            self._ids.discard(self._retained[cut].transaction_id)
            cut += 1
        if cut:
            del self._retained[:cut]

    def _row(self, ts: float) -> dict[str, Any]:
        w1, w24, w7 = self._windows["1h"], self._windows["24h"], self._windows["7d"]
        return {
            "event_timestamp": ts,
            "txn_count_1h": w1.count,
            "txn_count_24h": w24.count,
            "txn_count_7d": w7.count,
            "amount_mean_24h": w24.mean(),
            "amount_max_24h": w24.max(),
            "amount_mean_7d": w7.mean(),
            "amount_max_7d": w7.max(),
            "distinct_merchants_24h": len(w24.merchants),
            "distinct_devices_7d": len(w7.devices),
            "foreign_share_7d": w7.foreign / w7.count if w7.count else None,
            "online_share_24h": w24.online / w24.count if w24.count else None,
            "last_txn_unix": self.last_ts,
        }


class Aggregator:
    """Customer windows for every customer seen; rows carry the ``customer_id``."""

    def __init__(self, lateness_s: float = 300.0) -> None:
        self.lateness_s = lateness_s
        self.customers: dict[str, CustomerWindows] = {}

    def observe(self, customer_id: str, p: Point) -> list[dict[str, Any]]:
        state = self.customers.get(customer_id)
        if state is None:
            state = self.customers[customer_id] = CustomerWindows(self.lateness_s)
        rows = state.observe(p)
        for row in rows:
            row["customer_id"] = customer_id
        return rows

    def forget_idle(self, now: float) -> int:
        """Drop customers whose newest event left every window; return how many."""
        horizon = now - WINDOWS["7d"] - self.lateness_s
        idle = [c for c, s in self.customers.items() if s.last_ts <= horizon]
        for customer_id in idle:
            del self.customers[customer_id]
        return len(idle)
