"""A window's rows as the frame whylogs profiles, with bad values counted, never raised.

Numbers: ``None`` or an absent key is *missing*; NaN is *nan*; ±inf is *inf* and text
that is not a number is *invalid* — all three become NaN, so whylogs' sketches only see
finite numbers. Categories: absent or ``None`` is *missing*; a value the model's
vocabulary lacks is *unseen* and kept, so the chi-square test sees it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from driftloop.events import FeatureValue
from driftloop.profiles import SCORE_COLUMN

if TYPE_CHECKING:
    import pandas as pd

QUALITY_KINDS = ("missing", "nan", "inf", "invalid", "unseen")


@dataclass(frozen=True)
class Row:
    """One prediction held in an open window."""

    seq: int
    event_time: float
    score: float
    features: Mapping[str, FeatureValue]


def _number(value: FeatureValue, counts: dict[str, int]) -> float:
    if value is None:
        counts["missing"] += 1
        return math.nan
    if isinstance(value, bool | int | float):
        number = float(value)
    else:
        try:
            number = float(value)
        except ValueError:
            counts["invalid"] += 1
            return math.nan
    if math.isnan(number):
        counts["nan"] += 1
    elif math.isinf(number):
        counts["inf"] += 1
        return math.nan
    return number


def _category(
    value: FeatureValue, vocabulary: frozenset[str] | None, counts: dict[str, int]
) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        counts["missing"] += 1
        return None
    text = str(value)
    if vocabulary is not None and text not in vocabulary:
        counts["unseen"] += 1
    return text


def window_frame(
    rows: Sequence[Row],
    numeric: Sequence[str],
    categorical: Mapping[str, frozenset[str] | None],
) -> tuple[pd.DataFrame, dict[str, dict[str, int]]]:
    """The window's frame (the given columns plus ``score``) and per-column counts of
    the values that were missing or unusable."""
    import numpy as np
    import pandas as pd

    quality = {c: dict.fromkeys(QUALITY_KINDS, 0) for c in [*numeric, *categorical]}
    data: dict[str, object] = {}
    for name in numeric:
        counts = quality[name]
        data[name] = np.array(
            [_number(r.features.get(name), counts) for r in rows], dtype="float64"
        )
    for name, vocabulary in categorical.items():
        counts = quality[name]
        values = [_category(r.features.get(name), vocabulary, counts) for r in rows]
        data[name] = pd.Series(values, dtype="object")
    data[SCORE_COLUMN] = np.array([r.score for r in rows], dtype="float64")
    return pd.DataFrame(data), quality
