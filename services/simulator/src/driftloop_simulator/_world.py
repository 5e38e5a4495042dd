"""Customers and merchants: who pays where, how often, how much, from which device.

The world depends only on :class:`WorldConfig`, so a backfill and a stream started with the
same seed see the same cardholders and shops, and streamed customers have a history.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from driftloop_simulator._catalog import (
    CATEGORIES,
    CHANNEL_BOTH,
    CHANNEL_MODES,
    COUNTRIES,
    FloatArray,
    IntArray,
    ObjArray,
    category_names,
    country_codes,
    currencies,
)

USUAL_MERCHANTS = 10
"""How many regular merchants a customer has (fewer if the world has fewer merchants)."""
USUAL_SHARE = 0.8
"""Share of a customer's payments that go to their regular merchants."""


class WorldConfig(BaseModel):
    """Size and seed of the simulated population."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int = Field(7, ge=0)
    n_customers: int = Field(2000, ge=1)
    n_merchants: int = Field(300, ge=1)
    new_customer_share: float = Field(
        0.08, ge=0, le=1, description="customers who open their account during the history"
    )


@dataclass(frozen=True, eq=False)
class World:
    """Column arrays, one row per customer (``c_*``) or per merchant (``m_*``)."""

    config: WorldConfig
    c_id: ObjArray
    c_home: IntArray
    c_devices: ObjArray
    """(n, 2) device ids; the second is None for single-device customers."""
    c_n_devices: IntArray
    c_activity: FloatArray
    """Relative payment rate, mean 1."""
    c_spend: FloatArray
    c_online_share: FloatArray
    c_hour_shift: IntArray
    c_join_frac: FloatArray
    """0 for existing customers; for new ones, where in the history they join (0..1)."""
    c_usual: IntArray
    """(n, k) indexes of each customer's regular merchants."""
    c_merchant_flat_cum: FloatArray
    """Per-customer cumulative merchant distribution, row ``c`` offset by ``c`` and flattened."""
    m_id: ObjArray
    m_category: IntArray
    m_country: IntArray
    m_mode: IntArray
    m_popularity: FloatArray
    m_price: FloatArray

    @property
    def n_customers(self) -> int:
        return len(self.c_id)

    @property
    def n_merchants(self) -> int:
        return len(self.m_id)

    def draw_merchants(self, customers: IntArray, u: FloatArray) -> IntArray:
        """Merchant index per customer from their habits, given uniforms ``u`` in [0, 1)."""
        flat = np.searchsorted(self.c_merchant_flat_cum, customers + u, side="right")
        m = flat - customers * self.n_merchants
        index: IntArray = np.clip(m, 0, self.n_merchants - 1).astype(np.int64)
        return index

    def customers_frame(self, start_ns: int, span_ns: int) -> pd.DataFrame:
        """The customer table for a history that starts at ``start_ns`` and lasts ``span_ns``."""
        joined = start_ns + (self.c_join_frac * span_ns).astype(np.int64)
        return pd.DataFrame(
            {
                "customer_id": self.c_id,
                "home_country": country_codes()[self.c_home],
                "currency": currencies()[self.c_home],
                "joined_at": pd.to_datetime(joined, utc=True),
                "is_new": self.c_join_frac > 0,
                "activity": self.c_activity,
                "spend_level": self.c_spend,
                "online_share": self.c_online_share,
                "primary_device_id": self.c_devices[:, 0],
                "secondary_device_id": self.c_devices[:, 1],
            }
        )

    def merchants_frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "merchant_id": self.m_id,
                "merchant_category": category_names()[self.m_category],
                "country": country_codes()[self.m_country],
                "currency": currencies()[self.m_country],
                "channels": np.array(CHANNEL_MODES, dtype=object)[self.m_mode],
                "popularity": self.m_popularity,
                "price_level": self.m_price,
            }
        )


def device_ids(rng: np.random.Generator, n: int) -> ObjArray:
    """Fresh random device ids (the same shape for customers' and fraudsters' devices)."""
    raw = rng.integers(0, 2**48, size=n, dtype=np.int64)
    return np.array([f"dev-{x:012x}" for x in raw.tolist()], dtype=object)


def _merchants(
    rng: np.random.Generator, n: int
) -> tuple[IntArray, IntArray, IntArray, FloatArray, FloatArray]:
    n_cat = len(CATEGORIES)
    popularity = np.array([c.popularity for c in CATEGORIES]) ** 0.7
    guaranteed = np.repeat(np.arange(n_cat), 2)[:n]
    rest = rng.choice(n_cat, size=n - len(guaranteed), p=popularity / popularity.sum())
    category = rng.permutation(np.concatenate([guaranteed, rest])).astype(np.int64)
    weights = np.array([c.merchant_weight for c in COUNTRIES])
    country = rng.choice(len(COUNTRIES), size=n, p=weights / weights.sum()).astype(np.int64)
    modes = np.array([c.modes for c in CATEGORIES])[category]
    mode = (rng.random(n)[:, None] > np.cumsum(modes, axis=1)).sum(axis=1).astype(np.int64)
    return (
        category,
        country,
        np.minimum(mode, CHANNEL_BOTH),
        rng.lognormal(0.0, 1.0, n),
        rng.lognormal(0.0, 0.25, n),
    )


def build_world(config: WorldConfig) -> World:
    """The population for ``config``; the same config always gives the same world."""
    rng = np.random.default_rng([config.seed, 0])
    n, n_m, n_cat = config.n_customers, config.n_merchants, len(CATEGORIES)
    m_category, m_country, m_mode, m_pop, m_price = _merchants(rng, n_m)

    home_w = np.array([c.customer_weight for c in COUNTRIES])
    home = rng.choice(len(COUNTRIES), size=n, p=home_w / home_w.sum()).astype(np.int64)
    n_devices = 1 + (rng.random(n) < 0.45).astype(np.int64)
    devices = device_ids(rng, 2 * n).reshape(n, 2)
    devices[n_devices == 1, 1] = None
    activity = rng.gamma(2.0, 0.5, n)
    spend = rng.lognormal(0.0, 0.4, n)
    online_share = rng.beta(2.0, 5.0, n)
    hour_shift = rng.choice(np.arange(-2, 3), size=n, p=[0.1, 0.2, 0.4, 0.2, 0.1])
    is_new = rng.random(n) < config.new_customer_share
    join_frac = np.where(is_new, rng.uniform(0.05, 0.95, n), 0.0)
    alpha = np.array([c.popularity for c in CATEGORIES]) * 20.0
    cat_pref = rng.dirichlet(alpha, size=n)

    # Background taste: category preference, spread over a category's merchants by
    # popularity, strongly favouring shops at home and, abroad, those that sell online.
    onehot = np.eye(n_cat)[m_category]  # (n_m, n_cat)
    pop_in_cat = m_pop / (onehot @ (onehot.T @ m_pop))
    at_home = m_country[None, :] == home[:, None]
    abroad = np.where(m_mode != 0, 0.01, 0.002)[None, :]
    background = cat_pref[:, m_category] * pop_in_cat[None, :] * np.where(at_home, 1.0, abroad)
    background /= background.sum(axis=1, keepdims=True)

    k = min(USUAL_MERCHANTS, n_m)
    usual = np.empty((n, k), dtype=np.int64)
    usual_w = rng.dirichlet(np.ones(k), size=n)
    habits = (1.0 - USUAL_SHARE) * background
    for c in range(n):
        usual[c] = rng.choice(n_m, size=k, replace=False, p=background[c])
        habits[c, usual[c]] += USUAL_SHARE * usual_w[c]
    cum = np.cumsum(habits, axis=1)
    cum /= cum[:, -1:]
    flat = (cum + np.arange(n)[:, None]).ravel()

    return World(
        config=config,
        c_id=np.array([f"cus-{i:06d}" for i in range(n)], dtype=object),
        c_home=home,
        c_devices=devices,
        c_n_devices=n_devices,
        c_activity=activity,
        c_spend=spend,
        c_online_share=online_share,
        c_hour_shift=hour_shift.astype(np.int64),
        c_join_frac=join_frac,
        c_usual=usual,
        c_merchant_flat_cum=flat,
        m_id=np.array([f"mer-{i:05d}" for i in range(n_m)], dtype=object),
        m_category=m_category,
        m_country=m_country,
        m_mode=m_mode,
        m_popularity=m_pop,
        m_price=m_price,
    )
