"""The fixed vocabulary of the simulated world: countries, merchant categories, seasonality.

Amount parameters are in EUR; a merchant charges in its country's currency at a fixed rate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
ObjArray = npt.NDArray[np.object_]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class Country:
    code: str
    currency: str
    per_eur: float
    """Units of the local currency per EUR."""
    customer_weight: float
    """Share of cardholders living here (0: only merchants are here)."""
    merchant_weight: float


COUNTRIES: tuple[Country, ...] = (
    Country("DE", "EUR", 1.0, 0.24, 0.19),
    Country("FR", "EUR", 1.0, 0.18, 0.14),
    Country("NL", "EUR", 1.0, 0.10, 0.08),
    Country("ES", "EUR", 1.0, 0.12, 0.10),
    Country("IT", "EUR", 1.0, 0.12, 0.10),
    Country("GB", "GBP", 0.85, 0.12, 0.10),
    Country("PL", "PLN", 4.3, 0.07, 0.05),
    Country("SE", "SEK", 11.4, 0.05, 0.04),
    Country("US", "USD", 1.08, 0.0, 0.09),
    Country("CH", "CHF", 0.95, 0.0, 0.03),
    Country("AE", "AED", 4.0, 0.0, 0.03),
    Country("CN", "CNY", 7.8, 0.0, 0.03),
    Country("BR", "BRL", 6.0, 0.0, 0.02),
)

CHANNEL_POS, CHANNEL_ONLINE, CHANNEL_BOTH = 0, 1, 2
CHANNEL_MODES: tuple[str, ...] = ("pos", "online", "both")
"""How a merchant takes cards: in person, online, or both."""


@dataclass(frozen=True)
class Category:
    name: str
    median_eur: float
    sigma: float
    """Log-scale spread of the lognormal amount."""
    popularity: float
    modes: tuple[float, float, float]
    """Probability that a merchant of this category is pos-only, online-only, or both."""


CATEGORIES: tuple[Category, ...] = (
    Category("grocery", 32.0, 0.6, 0.22, (0.75, 0.05, 0.20)),
    Category("restaurant", 24.0, 0.6, 0.14, (0.85, 0.05, 0.10)),
    Category("fuel", 55.0, 0.35, 0.08, (1.0, 0.0, 0.0)),
    Category("transport", 12.0, 0.7, 0.08, (0.4, 0.3, 0.3)),
    Category("retail", 55.0, 0.8, 0.12, (0.4, 0.2, 0.4)),
    Category("electronics", 150.0, 1.0, 0.05, (0.3, 0.3, 0.4)),
    Category("digital_goods", 10.0, 0.8, 0.08, (0.0, 1.0, 0.0)),
    Category("entertainment", 30.0, 0.7, 0.06, (0.4, 0.3, 0.3)),
    Category("pharmacy", 18.0, 0.6, 0.06, (0.8, 0.1, 0.1)),
    Category("travel", 320.0, 0.8, 0.04, (0.2, 0.5, 0.3)),
    Category("home_garden", 70.0, 0.9, 0.04, (0.5, 0.2, 0.3)),
    Category("gambling", 40.0, 1.0, 0.02, (0.1, 0.9, 0.0)),
    Category("jewelry", 220.0, 0.9, 0.01, (0.7, 0.1, 0.2)),
    Category("utilities", 80.0, 0.5, 0.02, (0.0, 1.0, 0.0)),
)

CATEGORY_INDEX: dict[str, int] = {c.name: i for i, c in enumerate(CATEGORIES)}

# Relative transaction volume per UTC hour: quiet nights, a lunch bump, an evening peak.
HOUR_PROFILE: FloatArray = np.array(
    [0.25, 0.15, 0.10, 0.08, 0.08, 0.15, 0.40, 0.80, 1.10, 1.20, 1.30, 1.50,
     1.80, 1.60, 1.40, 1.40, 1.50, 1.70, 1.90, 1.80, 1.50, 1.10, 0.80, 0.50],
    dtype=np.float64,
)  # fmt: skip
HOUR_CUM: FloatArray = np.cumsum(HOUR_PROFILE) / HOUR_PROFILE.sum()

# Volume per weekday, Monday first; the mean is 1 so the daily target holds over a week.
WEEKDAY_FACTOR: FloatArray = np.array([0.92, 0.95, 0.97, 1.0, 1.12, 1.15, 0.89], dtype=np.float64)

FRAUD_PATTERNS: tuple[str, ...] = (
    "card_testing",
    "foreign_high_amount",
    "account_takeover",
    "mimicry",
)
"""Ground-truth fraud patterns. ``mimicry`` only appears under the concept-drift scenario."""

BASE_PATTERN_MIX: dict[str, float] = {
    "card_testing": 0.35,
    "foreign_high_amount": 0.30,
    "account_takeover": 0.35,
    "mimicry": 0.0,
}
"""Share of fraud *rows* per pattern before any scenario."""

NS_PER_S = 1_000_000_000
NS_PER_DAY = 86_400 * NS_PER_S


def country_codes() -> ObjArray:
    return np.array([c.code for c in COUNTRIES], dtype=object)


def currencies() -> ObjArray:
    return np.array([c.currency for c in COUNTRIES], dtype=object)


def per_eur() -> FloatArray:
    return np.array([c.per_eur for c in COUNTRIES], dtype=np.float64)


def category_names() -> ObjArray:
    return np.array([c.name for c in CATEGORIES], dtype=object)
