"""Scoring a batch of transactions: one online-feature read, one XGBoost call.

Documented defaults for what the online store does not know (never an error):

* an unknown customer: its aggregates are missing (NaN, XGBoost's "missing" branch);
  the on-demand features fall back as in training: ``amount_to_mean_7d`` = 1 and
  ``seconds_since_last_txn`` = 30 days;
* an unknown merchant: ``merchant_category`` and the merchant statistics are missing
  (the stored category is used, as in training, not the one in the request).

Both cases are flagged in the answer (``unknown_customer``, ``unknown_merchant``) and
counted in ``driftloop_serving_missing_features_total`` by feature view.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from driftloop.events import FeatureValue, Transaction
from driftloop.features import OnlineFeatureReader
from driftloop.models import LoadedModel

CUSTOMER_KEY = "customer_id"
MERCHANT_KEY = "merchant_id"


@dataclass(frozen=True)
class ActiveModel:
    """A verified, warmed model with the feature reader of its feature service."""

    model: LoadedModel
    reader: OnlineFeatureReader
    view_keys: dict[str, tuple[str, ...]]  # stored feature view -> its entity join keys
    threshold: float
    threshold_source: str  # "user_config" or "model"
    model_uri: str
    loaded_at: datetime

    def views_keyed_by(self, key: str) -> list[str]:
        return [view for view, keys in self.view_keys.items() if key in keys]


@dataclass(frozen=True)
class Scored:
    score: float
    decision: bool
    features: dict[str, FeatureValue]  # the model's inputs, raw (before encoding)
    feature_ages_s: dict[str, float | None]  # per stored view; None: entity unknown
    unknown_customer: bool
    unknown_merchant: bool

    @property
    def feature_age_s(self) -> float | None:
        """Age of the newest stored feature the row got; None if it got none."""
        ages = [age for age in self.feature_ages_s.values() if age is not None]
        return min(ages) if ages else None


def request_rows(transactions: Sequence[Transaction]) -> pd.DataFrame:
    """Entity keys and request-time inputs, as ``fraud_v1``'s request source names them."""
    return pd.DataFrame(
        {
            CUSTOMER_KEY: [t.customer_id for t in transactions],
            MERCHANT_KEY: [t.merchant_id for t in transactions],
            "amount": np.array([t.amount for t in transactions], dtype="float64"),
            "country": [t.country for t in transactions],
            "card_country": [t.card_country for t in transactions],
            "txn_unix": np.array([t.event_time.timestamp() for t in transactions], dtype="float64"),
        }
    )


def _plain(value: object) -> FeatureValue:
    """A JSON-ready scalar: numpy scalars unwrapped, NaN and NA as None."""
    if value is None or value is pd.NA:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, bool | int | float | str):
        return value
    return str(value)


def score_batch(
    active: ActiveModel, transactions: Sequence[Transaction], now: float | None = None
) -> list[Scored]:
    """Scores for ``transactions`` in order. Blocking: run it off the event loop."""
    online = active.reader.read(request_rows(transactions))
    names = active.model.features.names
    frame = online.values[names]
    scores = active.model.predict(frame)
    now = time.time() if now is None else now
    ages = {
        view: [None if math.isnan(t) else max(0.0, now - t) for t in online.event_time[view]]
        for view in active.view_keys
    }
    found = {view: online.found(view) for view in active.view_keys}
    customer_views = active.views_keyed_by(CUSTOMER_KEY)
    merchant_views = active.views_keyed_by(MERCHANT_KEY)
    records = frame.astype(object).to_dict("records")
    out = []
    for i, (score, record) in enumerate(zip(scores, records, strict=True)):
        value = float(score)
        out.append(
            Scored(
                score=value,
                decision=value >= active.threshold,
                features={name: _plain(record[name]) for name in names},
                feature_ages_s={view: ages[view][i] for view in active.view_keys},
                unknown_customer=any(not found[v][i] for v in customer_views),
                unknown_merchant=any(not found[v][i] for v in merchant_views),
            )
        )
    return out
