"""whylogs profiles as the model store keeps them and the monitor compares them.

A version stores two reference profiles (serialized ``DatasetProfileView`` bytes):

- ``REFERENCE_FEATURES``: the model's features on its training rows, *raw* — categories
  as strings, numbers as numbers, under the model's feature names — which is exactly how
  serving logs them in each :class:`~driftloop.events.Prediction`;
- ``REFERENCE_SCORES``: the model's scores on the holdout, in one column ``SCORE_COLUMN``.

Needs whylogs (the ``training`` extra, or any service that depends on whylogs).

whylogs reports its use to its vendor: the first import in a process, and the first
profile, each start a thread that POSTs the host name's hash and the environment (Python,
packages, CI or not) to ``https://stats.whylogs.com/``, joined when the process exits,
unless ``WHYLOGS_NO_ANALYTICS`` is set before that first import. driftloop sends nothing
anywhere: the two functions here that a process reaches whylogs through (a view is either
profiled or read back before anything compares it) opt the process out first
(:func:`no_usage_reports`), and the image sets the variable too.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd
    from whylogs.core import DatasetProfileView

REFERENCE_FEATURES = "features.whylogs"
REFERENCE_SCORES = "scores.whylogs"
SCORE_COLUMN = "score"
WHYLOGS_OPT_OUT = "WHYLOGS_NO_ANALYTICS"


def no_usage_reports() -> None:
    """Opt this process out of whylogs' usage reports (any value does). Call before
    importing whylogs: it reads the variable once, when first imported."""
    os.environ.setdefault(WHYLOGS_OPT_OUT, "1")


def profile_frame(frame: pd.DataFrame) -> DatasetProfileView:
    """Profile a pandas frame (whylogs' fast path: whole frames, not rows)."""
    no_usage_reports()
    import whylogs

    view: DatasetProfileView = whylogs.log(pandas=frame).profile().view()
    return view


def serialize(view: DatasetProfileView) -> bytes:
    data: bytes = view.serialize()
    return data


def deserialize(data: bytes) -> DatasetProfileView:
    no_usage_reports()
    from whylogs.core import DatasetProfileView

    view: DatasetProfileView = DatasetProfileView.deserialize(data)
    return view


def reference_profiles(features: pd.DataFrame, scores: Sequence[float]) -> dict[str, bytes]:
    """The two reference profiles of a version, keyed by their file names in the store.

    ``features``: the model's raw feature values on its training rows (model feature
    names as columns); ``scores``: the model's scores on its holdout."""
    import pandas as pd

    return {
        REFERENCE_FEATURES: serialize(profile_frame(features)),
        REFERENCE_SCORES: serialize(
            profile_frame(pd.DataFrame({SCORE_COLUMN: pd.Series(scores, dtype="float64")}))
        ),
    }
