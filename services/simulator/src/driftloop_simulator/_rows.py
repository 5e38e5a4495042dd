"""Transaction rows as column arrays, and the draw of an ordinary (habitual) payment."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np
import pandas as pd

from driftloop_simulator._catalog import (
    CATEGORIES,
    CHANNEL_BOTH,
    CHANNEL_ONLINE,
    BoolArray,
    FloatArray,
    IntArray,
    ObjArray,
    category_names,
    country_codes,
    currencies,
    per_eur,
)
from driftloop_simulator._world import World

MAX_EUR = 20_000.0
MIN_EUR = 0.5


@dataclass(frozen=True, eq=False)
class Rows:
    """Generated payments, unsorted; ``t`` is nanoseconds since the epoch (UTC)."""

    customer: IntArray
    t: IntArray
    merchant_id: ObjArray
    merchant_category: ObjArray
    country: ObjArray
    currency: ObjArray
    channel: ObjArray
    device_id: ObjArray
    amount: FloatArray
    is_fraud: BoolArray
    fraud_pattern: ObjArray

    def __len__(self) -> int:
        return len(self.t)

    def select(self, index: IntArray | BoolArray) -> Rows:
        return Rows(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    def with_columns(self, **columns: object) -> Rows:
        return replace(self, **columns)  # type: ignore[arg-type]

    @staticmethod
    def concat(parts: list[Rows]) -> Rows:
        return Rows(
            **{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(Rows)}
        )

    @staticmethod
    def empty() -> Rows:
        obj = np.empty(0, dtype=object)
        return Rows(
            customer=np.empty(0, dtype=np.int64),
            t=np.empty(0, dtype=np.int64),
            merchant_id=obj,
            merchant_category=obj,
            country=obj,
            currency=obj,
            channel=obj,
            device_id=obj,
            amount=np.empty(0, dtype=np.float64),
            is_fraud=np.empty(0, dtype=np.bool_),
            fraud_pattern=obj,
        )

    def frame(self, world: World) -> pd.DataFrame:
        """The rows with customer ids and card country (the customer's home), sorted by time."""
        order = np.argsort(self.t, kind="stable")
        r = self.select(order)
        return pd.DataFrame(
            {
                "customer_id": world.c_id[r.customer],
                "merchant_id": r.merchant_id,
                "amount": r.amount.astype(np.float64),
                "currency": r.currency,
                "merchant_category": r.merchant_category,
                "channel": r.channel,
                "country": r.country,
                "card_country": country_codes()[world.c_home[r.customer]],
                "device_id": r.device_id,
                "event_timestamp": pd.to_datetime(r.t, utc=True),
                "is_fraud": r.is_fraud,
                "fraud_pattern": r.fraud_pattern,
            }
        )


def to_local(amount_eur: FloatArray, country: IntArray) -> FloatArray:
    """EUR amounts in the merchant's currency, rounded to cents."""
    local: FloatArray = np.maximum(np.round(amount_eur * per_eur()[country], 2), 0.01)
    return local


def habitual_eur(
    world: World, rng: np.random.Generator, customers: IntArray, merchants: IntArray
) -> FloatArray:
    """What a customer usually spends at a merchant: lognormal per category, scaled by the
    customer's spend level and the merchant's price level."""
    cat = world.m_category[merchants]
    median = np.array([c.median_eur for c in CATEGORIES])[cat]
    sigma = np.array([c.sigma for c in CATEGORIES])[cat]
    scale = median * world.c_spend[customers] * world.m_price[merchants]
    eur: FloatArray = np.clip(
        scale * np.exp(sigma * rng.standard_normal(len(customers))), MIN_EUR, MAX_EUR
    )
    return eur


def assemble(
    world: World,
    customers: IntArray,
    t: IntArray,
    merchants: IntArray,
    online: BoolArray,
    device: ObjArray,
    amount_eur: FloatArray,
    pattern: str | ObjArray,
) -> Rows:
    """Rows at world merchants; ``pattern`` "" means legitimate."""
    n = len(customers)
    country = world.m_country[merchants]
    patterns = np.full(n, pattern, dtype=object) if isinstance(pattern, str) else pattern
    devices = device.astype(object)
    devices[~online] = None
    return Rows(
        customer=customers.astype(np.int64),
        t=t.astype(np.int64),
        merchant_id=world.m_id[merchants],
        merchant_category=category_names()[world.m_category[merchants]],
        country=country_codes()[country],
        currency=currencies()[country],
        channel=np.where(online, "online", "pos").astype(object),
        device_id=devices,
        amount=to_local(amount_eur, country),
        is_fraud=patterns != "",
        fraud_pattern=patterns,
    )


def online_at(
    world: World, rng: np.random.Generator, customers: IntArray, merchants: IntArray
) -> BoolArray:
    """Whether each payment is made online: the merchant's mode, else the customer's habit."""
    mode = world.m_mode[merchants]
    choose = rng.random(len(customers)) < world.c_online_share[customers]
    online: BoolArray = (mode == CHANNEL_ONLINE) | ((mode == CHANNEL_BOTH) & choose)
    return online


def usual_devices(world: World, rng: np.random.Generator, customers: IntArray) -> ObjArray:
    """Mostly the customer's primary device, sometimes their second one."""
    second = (world.c_n_devices[customers] == 2) & (rng.random(len(customers)) < 0.2)
    devices: ObjArray = world.c_devices[customers, second.astype(np.int64)]
    return devices


def habitual_rows(
    world: World,
    rng: np.random.Generator,
    customers: IntArray,
    t: IntArray,
    pattern: str = "",
) -> Rows:
    """Payments that follow each customer's habits: their merchants, channel, device, amounts.

    Legitimate traffic is exactly this; so is ``mimicry`` fraud, which is the point of it.
    """
    merchants = world.draw_merchants(customers, rng.random(len(customers)))
    online = online_at(world, rng, customers, merchants)
    device = usual_devices(world, rng, customers)
    amount = habitual_eur(world, rng, customers, merchants)
    return assemble(world, customers, t, merchants, online, device, amount, pattern)
