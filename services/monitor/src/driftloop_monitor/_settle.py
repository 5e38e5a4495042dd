"""Columns that settle after a change: what each column of a window is tested against.

A version retrained after a change (its lineage records the change point) has a reference
of the new regime's first hours. A feature that aggregates over a past horizon (a 24 h
maximum, a 7-day mean) keeps moving after the change until its horizon holds only the new
regime: on the demo's loop, ``amount_max_24h`` read a mean of 1,524 in the retrained
version's reference (2-15 event-hours after the change, when the 24 h maxima still held
the old fraud's large amounts) and 690-1,080 in each of the 9 windows it then served,
which raised drift events about the change the version had just healed.

So, per column with a horizon (``drift.settle_hours``), for a window of such a version:
- while the window starts less than a horizon after the change point, the column is
  *settling*: tested against the training reference and recorded, not counted;
- the first window that starts later is *adopted*: its profile becomes the column's
  reference for the version (kept in the checkpoint, with the window it came from);
- later windows are tested against that window: *rebased*, and counted again.

A column without a horizon, and every column of a version trained without a change
point, is tested against the training reference as before. The adopted window is the
version's own traffic; the performance check (labels) still judges the model on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal

from driftloop.drift import DriftSpec
from driftloop.profiles import deserialize
from driftloop_monitor._checkpoint import Checkpoint
from driftloop_monitor._references import Reference

if TYPE_CHECKING:
    from whylogs.core import DatasetProfileView


@dataclass(frozen=True)
class Basis:
    """What one column of a window is tested against, when not the training reference."""

    state: Literal["settling", "adopted", "rebased"]
    window: str | None = None
    """``rebased``: the window (``<start>/<end>``) whose profile is the reference."""
    profile: DatasetProfileView | None = None

    @property
    def counted(self) -> bool:
        return self.state == "rebased"

    @property
    def label(self) -> str:
        return f"window {self.window}" if self.state == "rebased" else self.state


def window_label(start: datetime, end: datetime) -> str:
    return f"{start.isoformat()}/{end.isoformat()}"


class Settling:
    def __init__(self, spec: DriftSpec, checkpoint: Checkpoint) -> None:
        self._spec = spec
        self._checkpoint = checkpoint
        self._profiles: dict[tuple[str, str], DatasetProfileView] = {}

    def bases(self, ref: Reference, start: datetime) -> dict[str, Basis]:
        """The bases of the columns of ``ref``'s version that have a horizon."""
        if ref.change_point is None or not self._spec.settle_hours:
            return {}
        rebased = self._checkpoint.rebased(ref.version)
        out: dict[str, Basis] = {}
        for column in [*ref.numeric, *ref.categorical]:
            horizon = self._spec.horizon_s(column)
            if horizon is None:
                continue
            if start < ref.change_point + timedelta(seconds=horizon):
                out[column] = Basis("settling")
            elif column in rebased:
                window = rebased[column]
                out[column] = Basis("rebased", window, self._profile(ref.version, window))
            else:
                out[column] = Basis("adopted")
        return out

    def adopt(
        self, version: str, bases: dict[str, Basis], window: str, profile: bytes | None
    ) -> list[str]:
        """Inside the window's transaction: the adopted columns are rebased on it."""
        columns = sorted(c for c, b in bases.items() if b.state == "adopted")
        if columns and profile is not None:
            self._checkpoint.rebase(version, columns, window, profile)
        return columns

    def _profile(self, version: str, window: str) -> DatasetProfileView:
        key = (version, window)
        if key not in self._profiles:
            self._profiles[key] = deserialize(self._checkpoint.base_profile(version, window))
        return self._profiles[key]
