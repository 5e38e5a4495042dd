"""Training-serving skew: the features a sample of predictions was served with, against the
offline point-in-time features of the same transactions (what training would have seen).

Per feature: the mean served minus the mean offline over the rows both have, and the share
of rows whose values differ beyond a tolerance (a value on one side and none on the other
differs too). A feature is *skewed* when that share exceeds the policy's ``max_share``:
the online and offline paths should agree row by row, so any steady share of differing
rows is the pipeline, while the world moving shows in both paths alike (drift, not skew).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    import pandas as pd

    from driftloop.drift._policy import SkewSpec


class SkewColumn(BaseModel):
    """One feature's skew over a window's sample."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    column: str
    rows: int = Field(description="sampled rows compared")
    served_mean: float | None = None
    offline_mean: float | None = None
    mean_diff: float | None = Field(
        None, description="served minus offline, over rows where both have a number"
    )
    differing: float = Field(description="share of rows differing beyond the tolerance")
    served_missing: int = 0
    offline_missing: int = 0
    skewed: bool = False


class SkewRecord(BaseModel):
    """A window's skew check: which rows were compared and each feature's figures."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sampled: int = Field(description="predictions of the window in the sample")
    compared: int = Field(description="of those, rows whose transaction was found")
    tolerance: float
    max_share: float
    columns: list[SkewColumn] = Field(default_factory=list)
    error: str | None = Field(None, description="why the check could not run, if it did not")

    @property
    def skewed(self) -> list[str]:
        return [c.column for c in self.columns if c.skewed]


def _number(value: object) -> float:
    if value is None or isinstance(value, str):
        return math.nan
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan


def _missing(value: object) -> bool:
    if value is None:
        return True
    try:
        return bool(value != value)  # NaN, pd.NA
    except (TypeError, ValueError):
        return True


def _mean(values: Sequence[float]) -> float | None:
    return float(sum(values) / len(values)) if values else None


def compare_column(
    name: str, served: Sequence[object], offline: Sequence[object], spec: SkewSpec
) -> SkewColumn:
    """The skew figures of one feature over aligned rows (served[i] and offline[i] are the
    same transaction's)."""
    if len(served) != len(offline):
        raise ValueError(f"{name}: {len(served)} served values but {len(offline)} offline")
    differing = served_missing = offline_missing = 0
    both_s: list[float] = []
    both_o: list[float] = []
    for s, o in zip(served, offline, strict=True):
        s_none, o_none = _missing(s), _missing(o)
        served_missing += s_none
        offline_missing += o_none
        if s_none or o_none:
            differing += s_none != o_none
            continue
        a, b = _number(s), _number(o)
        if math.isnan(a) or math.isnan(b):  # categories: equal or not
            differing += str(s) != str(o)
            continue
        both_s.append(a)
        both_o.append(b)
        differing += abs(a - b) > spec.tolerance * max(1.0, abs(b))
    rows = len(served)
    share = differing / rows if rows else 0.0
    served_mean, offline_mean = _mean(both_s), _mean(both_o)
    diff = None if served_mean is None or offline_mean is None else served_mean - offline_mean
    return SkewColumn(
        column=name, rows=rows, served_mean=served_mean, offline_mean=offline_mean,
        mean_diff=diff, differing=share, served_missing=served_missing,
        offline_missing=offline_missing, skewed=rows > 0 and share > spec.max_share,
    )  # fmt: skip


def compare_skew(
    served: pd.DataFrame, offline: pd.DataFrame, columns: Sequence[str], spec: SkewSpec,
    sampled: int | None = None,
) -> SkewRecord:  # fmt: skip
    """Per column of ``columns`` (less the spec's exclusions) present in both frames, the
    skew between ``served`` and ``offline``, whose rows are aligned by position."""
    if len(served) != len(offline):
        raise ValueError(f"{len(served)} served rows but {len(offline)} offline rows")
    out = [
        compare_column(name, served[name].tolist(), offline[name].tolist(), spec)
        for name in columns
        if name not in spec.exclude and name in served.columns and name in offline.columns
    ]
    return SkewRecord(
        sampled=len(served) if sampled is None else sampled, compared=len(served),
        tolerance=spec.tolerance, max_share=spec.max_share, columns=out,
    )  # fmt: skip
