"""whylogs profiles as the model store keeps them and the monitor compares them.

A version stores two reference profiles (serialized ``DatasetProfileView`` bytes):

- ``REFERENCE_FEATURES``: the model's features on its training rows, *raw* — categories
  as strings, numbers as numbers, under the model's feature names — which is exactly how
  serving logs them in each :class:`~driftloop.events.Prediction`;
- ``REFERENCE_SCORES``: the model's scores on the holdout, in one column ``SCORE_COLUMN``.

Needs whylogs (the ``training`` extra, or any service that depends on whylogs).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd
    from whylogs.core import DatasetProfileView

REFERENCE_FEATURES = "features.whylogs"
REFERENCE_SCORES = "scores.whylogs"
SCORE_COLUMN = "score"


def profile_frame(frame: pd.DataFrame) -> DatasetProfileView:
    """Profile a pandas frame (whylogs' fast path: whole frames, not rows)."""
    import whylogs

    view: DatasetProfileView = whylogs.log(pandas=frame).profile().view()
    return view


def serialize(view: DatasetProfileView) -> bytes:
    data: bytes = view.serialize()
    return data


def deserialize(data: bytes) -> DatasetProfileView:
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
