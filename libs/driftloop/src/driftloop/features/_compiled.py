"""Request-time features without pandas: compiled forms of the repository's on-demand views.

Feast runs an on-demand view's pandas UDF on a DataFrame: about 3 ms a call, whatever the
rows, most of it building frames. Serving needs the same values in microseconds, so each
on-demand view the repository defines has a NumPy form here, keyed by the view's name and
the SHA-256 of the UDF's source as Feast stores it (``udf_string``). A view whose source
changed — edited in ``features/repo/definitions.py`` without its form here — gets no
compiled form and is computed by Feast's own transformation (correct, slower, logged by
:class:`~driftloop.features.OnlinePlan`). ``tests/unit/test_online_plan.py`` checks that
the shipped views have their forms and that each form equals Feast's view on 10 k random
rows, edge cases included.

A form takes and returns columns as arrays: numbers as float64 with NaN for null, strings
as object arrays; outputs are float64 or int64 as the view's schema types them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

Columns = Mapping[str, np.ndarray]
Transform = Callable[[Columns], dict[str, np.ndarray]]

NO_HISTORY_S = 30 * 86400.0
"""``seconds_since_last_txn`` of a customer without history: beyond every window."""


def udf_digest(udf_string: str) -> str:
    return hashlib.sha256(udf_string.strip().encode()).hexdigest()


def transaction_context(inputs: Columns) -> dict[str, np.ndarray]:
    """``transaction_context`` of ``definitions.py``, column for column."""
    amount = inputs["amount"]
    mean = inputs["amount_mean_7d"]
    positive = mean > 0  # False for NaN
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(positive, amount / np.where(positive, mean, 1.0), np.nan)
    ratio[np.isnan(ratio)] = 1.0  # no history: the amount is its own mean
    when = inputs["txn_unix"]
    since = when - inputs["last_txn_unix"]
    since[np.isnan(since)] = NO_HISTORY_S
    return {
        "amount_to_mean_7d": ratio,
        "is_foreign": (inputs["country"] != inputs["card_country"]).astype(np.int64),
        # pandas: to_datetime(unit="s", utc=True).dt.hour, i.e. floor division in UTC
        "hour_of_day": (np.floor(when / 3600.0) % 24).astype(np.int64),
        "seconds_since_last_txn": np.maximum(since, 0.0),
    }


@dataclass(frozen=True)
class Compiled:
    udf_sha256: str
    transform: Transform


COMPILED: dict[str, Compiled] = {
    "transaction_context": Compiled(
        udf_sha256="7d0d2f122ff06a4e54ddc872fa77ef109fe7cf610244eb12f113ddc239cb9dbb",
        transform=transaction_context,
    ),
}


def compiled_form(view_name: str, udf_string: str) -> Transform | None:
    """The compiled form of on-demand view ``view_name`` if it was written for exactly this
    UDF source; ``None`` otherwise (compute it with Feast's transformation)."""
    entry = COMPILED.get(view_name)
    if entry is None or entry.udf_sha256 != udf_digest(udf_string):
        return None
    return entry.transform
