"""Fraud patterns: each turns victims and start times into fraudulent payments.

* ``card_testing``: a burst of small online amounts at unfamiliar merchants within minutes.
* ``foreign_high_amount``: one or two large purchases at merchants abroad.
* ``account_takeover``: a new device buys at unfamiliar merchants for several times the
  customer's usual amounts.
* ``mimicry``: fraud that follows the victim's habits (home, usual device, merchants and
  amounts); only the concept-drift scenario produces it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from driftloop_simulator._catalog import (
    CATEGORY_INDEX,
    CHANNEL_BOTH,
    CHANNEL_ONLINE,
    CHANNEL_POS,
    NS_PER_S,
    BoolArray,
    FloatArray,
    IntArray,
)
from driftloop_simulator._rows import Rows, assemble, habitual_eur, habitual_rows
from driftloop_simulator._world import World, device_ids

Pattern = Callable[[World, np.random.Generator, IntArray, IntArray], Rows]


def _expand(
    rng: np.random.Generator, start: IntArray, k: IntArray, gap_s: tuple[int, int]
) -> tuple[IntArray, IntArray]:
    """Episode index and time of every row: ``k`` >= 1 rows per episode, random gaps apart."""
    episode = np.repeat(np.arange(len(k)), k)
    gaps = rng.integers(gap_s[0], gap_s[1] + 1, size=len(episode)).astype(np.int64)
    first = np.cumsum(k) - k
    gaps[first] = 0
    total = np.cumsum(gaps)
    offset = total - total[first][episode]
    return episode, start[episode] + offset * NS_PER_S


def _pool(world: World, categories: tuple[str, ...], online: bool) -> IntArray:
    cats = [CATEGORY_INDEX[c] for c in categories]
    mask = np.isin(world.m_category, cats)
    if online:
        mask &= world.m_mode != CHANNEL_POS
    pool = np.flatnonzero(mask)
    if len(pool) == 0:
        pool = np.flatnonzero(world.m_mode != CHANNEL_POS) if online else np.arange(0)
    return pool if len(pool) else np.arange(world.n_merchants)


def _pick(
    world: World,
    rng: np.random.Generator,
    pool: IntArray,
    customers: IntArray,
    want_home: BoolArray,
) -> IntArray:
    """A merchant from ``pool`` per row, at home where ``want_home`` else abroad, if any."""
    candidates = pool[rng.integers(0, len(pool), size=(len(customers), 8))]
    at_home = world.m_country[candidates] == world.c_home[customers][:, None]
    fits = at_home == want_home[:, None]
    choice = np.where(fits.any(axis=1), fits.argmax(axis=1), 0)
    picked: IntArray = candidates[np.arange(len(customers)), choice]
    return picked


def card_testing(world: World, rng: np.random.Generator, victims: IntArray, t: IntArray) -> Rows:
    k = 3 + np.minimum(rng.poisson(2.5, len(victims)), 7)
    ep, times = _expand(rng, t, k, (5, 90))
    customers = victims[ep]
    pool = _pool(world, ("digital_goods", "entertainment", "gambling", "retail"), online=True)
    merchants = pool[rng.integers(0, len(pool), size=len(ep))]
    eur = np.round(rng.uniform(0.5, 4.0, len(ep)), 2)
    eur = np.where(rng.random(len(ep)) < 0.3, 1.0, eur)
    device = device_ids(rng, len(victims))[ep]
    online = np.ones(len(ep), dtype=np.bool_)
    return assemble(world, customers, times, merchants, online, device, eur, "card_testing")


def foreign_high_amount(
    world: World, rng: np.random.Generator, victims: IntArray, t: IntArray
) -> Rows:
    k = 1 + (rng.random(len(victims)) < 0.4).astype(np.int64)
    ep, times = _expand(rng, t, k, (600, 3600))
    customers = victims[ep]
    pool = _pool(world, ("electronics", "jewelry", "travel", "retail"), online=False)
    merchants = _pick(world, rng, pool, customers, np.zeros(len(ep), dtype=np.bool_))
    mode = world.m_mode[merchants]
    online = (mode == CHANNEL_ONLINE) | ((mode == CHANNEL_BOTH) & (rng.random(len(ep)) < 0.5))
    device = device_ids(rng, len(victims))[ep]
    eur: FloatArray = np.clip(rng.lognormal(np.log(900.0), 0.6, len(ep)), 150.0, 20_000.0)
    return assemble(world, customers, times, merchants, online, device, eur, "foreign_high_amount")


def account_takeover(
    world: World, rng: np.random.Generator, victims: IntArray, t: IntArray
) -> Rows:
    k = 2 + np.minimum(rng.poisson(1.0, len(victims)), 4)
    ep, times = _expand(rng, t, k, (120, 1800))
    customers = victims[ep]
    categories = ("electronics", "retail", "travel", "digital_goods", "jewelry", "home_garden")
    pool = _pool(world, categories, online=True)
    merchants = _pick(world, rng, pool, customers, rng.random(len(ep)) < 0.7)
    eur = habitual_eur(world, rng, customers, merchants) * rng.uniform(3.0, 8.0, len(ep))
    device = device_ids(rng, len(victims))[ep]
    online = np.ones(len(ep), dtype=np.bool_)
    return assemble(world, customers, times, merchants, online, device, eur, "account_takeover")


def mimicry(world: World, rng: np.random.Generator, victims: IntArray, t: IntArray) -> Rows:
    k = 1 + (rng.random(len(victims)) < 0.5).astype(np.int64)
    ep, times = _expand(rng, t, k, (1800, 7200))
    return habitual_rows(world, rng, victims[ep], times, pattern="mimicry")


PATTERNS: dict[str, tuple[Pattern, float]] = {
    "card_testing": (card_testing, 5.5),
    "foreign_high_amount": (foreign_high_amount, 1.4),
    "account_takeover": (account_takeover, 3.0),
    "mimicry": (mimicry, 1.5),
}
"""Each pattern with the mean number of rows of one episode."""


def fraud_rows(
    world: World,
    rng: np.random.Generator,
    anchors_c: IntArray,
    anchors_t: IntArray,
    expected_rows: float,
    mix: dict[str, float],
    delay_s: float,
) -> Rows:
    """About ``expected_rows`` fraudulent rows split by ``mix``.

    Episodes start at the time of a random legitimate payment (the ``anchors``), on that
    customer's card, half of them after an exponential delay of mean ``delay_s``, so fraud
    follows the traffic but leans later into the night.
    """
    parts: list[Rows] = []
    for name, (pattern, rows_per_episode) in PATTERNS.items():
        share = mix.get(name, 0.0)
        if share <= 0 or len(anchors_c) == 0:
            continue
        n = int(rng.poisson(expected_rows * share / rows_per_episode))
        if n == 0:
            continue
        pick = rng.integers(0, len(anchors_c), size=n)
        late = rng.random(n) < 0.5
        delay = np.round(rng.exponential(delay_s, n) * late).astype(np.int64) * NS_PER_S
        parts.append(pattern(world, rng, anchors_c[pick], anchors_t[pick] + delay))
    return Rows.concat(parts) if parts else Rows.empty()
