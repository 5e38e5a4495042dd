"""Scoring a batch of transactions: a plan made when the model loads, arrays per request.

:class:`ScoringPlan` resolves what a request needs when a version loads: the online read
of its feature service (:class:`~driftloop.features.OnlinePlan`: one online-store read
per stored view, request-time features without pandas), where each model input comes
from, each categorical vocabulary as a dict, and a float32 matrix the size of the
largest batch. Per batch it fills the matrix and scores it with XGBoost's dense
prediction, its arguments made once (:class:`~driftloop_serving._predict.DensePredictor`).

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
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from driftloop.events import FeatureValue, Transaction
from driftloop.features import OnlineColumns, OnlinePlan
from driftloop.features._online import INTEGER, TEXT
from driftloop.models import LoadedModel
from driftloop.models._encode import UNKNOWN_CATEGORY, vocabularies
from driftloop_serving._predict import DensePredictor

CUSTOMER_KEY = "customer_id"
MERCHANT_KEY = "merchant_id"

REQUEST_COLUMNS: dict[str, Callable[[Sequence[Transaction]], np.ndarray]] = {
    "amount": lambda ts: np.fromiter((t.amount for t in ts), np.float64, len(ts)),
    "country": lambda ts: np.array([t.country for t in ts], dtype=object),
    "card_country": lambda ts: np.array([t.card_country for t in ts], dtype=object),
    "txn_unix": lambda ts: np.fromiter((t.event_time.timestamp() for t in ts), np.float64, len(ts)),
}
"""The request-time inputs a feature service may ask for, as ``fraud_v1``'s request
source names them, taken from the transactions."""
ENTITY_KEYS: dict[str, Callable[[Transaction], str]] = {
    CUSTOMER_KEY: lambda t: t.customer_id,
    MERCHANT_KEY: lambda t: t.merchant_id,
}


class PlanError(ValueError):
    """A model whose inputs the feature service cannot provide."""


class ScoringPlan:
    """One version's inputs resolved against its feature service (see the module's
    docstring). ``score`` may be called from any thread; calls take turns on the matrix."""

    def __init__(self, model: LoadedModel, online: OnlinePlan, max_rows: int = 256) -> None:
        self.model = model
        self.online = online
        names = model.features.names
        unknown = [name for name in names if name not in online.kinds]
        if unknown:
            raise PlanError(f"feature service does not serve the model inputs {unknown}")
        for column in online.request_columns:
            if column not in REQUEST_COLUMNS:
                raise PlanError(f"no request column {column!r} in a transaction")
        for key in online.entity_keys:
            if key not in ENTITY_KEYS:
                raise PlanError(f"no entity key {key!r} in a transaction")
        vocab = vocabularies(model.features)
        self._inputs: list[tuple[int, str, dict[str, float] | None]] = []
        for j, feature in enumerate(model.features.features):
            codes = None
            if feature.type == "categorical":
                codes = {value: float(i) for i, value in enumerate(vocab[feature.name])}
            self._inputs.append((j, feature.name, codes))
        self.names = names
        self.views = online.views
        self.customer_views = [v for v, k in online.view_keys.items() if CUSTOMER_KEY in k]
        self.merchant_views = [v for v, k in online.view_keys.items() if MERCHANT_KEY in k]
        self._matrix = np.empty((max_rows, len(names)), dtype=np.float32)
        self._predictor = DensePredictor(model.booster)
        self._lock = threading.Lock()

    def score(self, transactions: Sequence[Transaction], now: float | None = None) -> ScoredBatch:
        """Scores of ``transactions`` in order, with the features they were scored on."""
        keys = {key: [ENTITY_KEYS[key](t) for t in transactions] for key in self.online.entity_keys}
        request = {c: REQUEST_COLUMNS[c](transactions) for c in self.online.request_columns}
        return self.score_columns(self.online.read(keys, request), len(transactions), now)

    def score_columns(
        self, columns: OnlineColumns, n: int, now: float | None = None
    ) -> ScoredBatch:
        """Scores of rows whose features were read already (by this plan's online read,
        or by another plan's on the same :class:`OnlinePlan`: a shadow scores the serving
        batch's features without reading them again)."""
        with self._lock:
            if n > len(self._matrix):
                self._matrix = np.empty((n, len(self.names)), dtype=np.float32)
            matrix = self._matrix[:n]
            for j, name, codes in self._inputs:
                column = columns.values[name]
                if codes is None:
                    matrix[:, j] = column
                else:
                    matrix[:, j] = [
                        math.nan if v is None else codes.get(v, UNKNOWN_CATEGORY) for v in column
                    ]
            scores = self._predictor.predict(matrix)
        return ScoredBatch(
            plan=self,
            scores=scores,
            columns=columns,
            now=time.time() if now is None else now,
        )


@dataclass(frozen=True)
class ActiveModel:
    """A verified, warmed model with the scoring plan of its feature service."""

    model: LoadedModel
    plan: ScoringPlan
    threshold: float
    threshold_source: str  # "user_config" or "model"
    model_uri: str
    loaded_at: datetime

    @property
    def view_keys(self) -> dict[str, tuple[str, ...]]:
        return self.plan.online.view_keys

    def score(self, transactions: Sequence[Transaction], now: float | None = None) -> ScoredBatch:
        return self.plan.score(transactions, now)

    def score_beside(self, batch: ScoredBatch, transactions: Sequence[Transaction]) -> ScoredBatch:
        """This (shadow) version's scores of the rows another version just scored: on the
        same features when both read one feature service, else read for it."""
        if self.plan.online is batch.plan.online:
            return self.plan.score_columns(batch.columns, len(batch), batch.now)
        return self.plan.score(transactions, batch.now)


@dataclass(frozen=True)
class Scored:
    score: float
    decision: bool
    feature_ages_s: dict[str, float | None]  # per stored view; None: entity unknown
    unknown_customer: bool
    unknown_merchant: bool

    @property
    def feature_age_s(self) -> float | None:
        """Age of the newest stored feature the row got; None if it got none."""
        ages = [age for age in self.feature_ages_s.values() if age is not None]
        return min(ages) if ages else None


@dataclass(frozen=True)
class ScoredBatch:
    """A batch's scores as arrays; :meth:`row` and :meth:`features` make one row's answer
    and its logged inputs (the latter off the request path, by the prediction log)."""

    plan: ScoringPlan
    scores: np.ndarray
    columns: OnlineColumns
    now: float

    def __len__(self) -> int:
        return len(self.scores)

    def row(self, i: int, threshold: float) -> Scored:
        score = float(self.scores[i])
        ages: dict[str, float | None] = {}
        for view in self.plan.views:
            stamp = float(self.columns.event_time[view][i])
            ages[view] = None if math.isnan(stamp) else max(0.0, self.now - stamp)
        return Scored(
            score=score,
            decision=score >= threshold,
            feature_ages_s=ages,
            unknown_customer=any(ages[v] is None for v in self.plan.customer_views),
            unknown_merchant=any(ages[v] is None for v in self.plan.merchant_views),
        )

    def rows(self, threshold: float) -> list[Scored]:
        return [self.row(i, threshold) for i in range(len(self))]

    def features(self, i: int) -> dict[str, FeatureValue]:
        """Row ``i``'s model inputs, raw (before encoding), JSON-ready: integers as ints,
        null as None."""
        return self.features_of([i])[0]

    def features_of(self, rows: Sequence[int]) -> list[dict[str, FeatureValue]]:
        """:meth:`features` of each of ``rows``, a column at a time."""
        kinds = self.plan.online.kinds
        names = self.plan.names
        index = np.asarray(rows, dtype=np.intp)
        columns: list[list[FeatureValue]] = []
        for name in names:
            values = self.columns.values[name][index].tolist()
            kind = kinds[name]
            if kind == TEXT:
                columns.append([None if v is None else str(v) for v in values])
            elif kind == INTEGER:
                columns.append([None if v != v else int(v) for v in values])  # NaN != NaN
            else:
                columns.append([None if v != v else float(v) for v in values])
        return [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]

    def missing(self, view: str) -> int:
        """Rows whose entity ``view`` did not know."""
        return int(np.isnan(self.columns.event_time[view]).sum())
