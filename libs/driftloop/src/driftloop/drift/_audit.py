"""What the monitor keeps of every closed window, and reading it back for reports.

Layout under the audit root (by default ``<state_dir>/monitor``)::

    <model>/<version>/data-<start>-<end>.json     the window's verdict and evidence
    <model>/<version>/data-<start>-<end>.whylogs  the window's whylogs profile
    <model>/<version>/perf-<start>-<end>.json     a performance evaluation

Names derive from the window, so a window closed again after a restart overwrites its
own files with the same content instead of adding a second record.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from driftloop.drift._skew import SkewRecord
from driftloop.events import Evidence, UtcDatetime

if TYPE_CHECKING:
    from whylogs.core import DatasetProfileView
    from whylogs.core.view.column_profile_view import ColumnProfileView

Verdict = Literal[
    "drift", "no_drift", "too_small", "no_reference", "degraded", "ok", "too_few_positives"
]
Summary = dict[str, float | str | None]


class ColumnRecord(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    column: str
    algorithm: str
    statistic: float
    p_value: float | None
    p_adjusted: float | None
    effect: float
    min_effect: float
    category: Literal["NO_DRIFT", "POSSIBLE_DRIFT", "DRIFT"]
    window: Summary = Field(default_factory=dict)
    reference: Summary = Field(default_factory=dict)
    basis: str | None = Field(
        None,
        description="what the column was tested against, when not the version's training "
        "reference: 'settling' (its horizon still reaches back before the change the "
        "version was trained for: tested, not counted), 'adopted' (this window, the "
        "column's first settled one, becomes its reference: not counted) or "
        "'window <start>/<end>' (the window of the version's own traffic it was rebased on)",
    )


class WindowRecord(BaseModel):
    """A closed window: data drift (``kind="data"``) or a performance evaluation."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["data", "performance"]
    model: str
    version: str
    start: UtcDatetime
    end: UtcDatetime
    row_count: int
    verdict: Verdict
    streak: int = 0
    event_id: str | None = None
    reference_profile: str | None = None
    columns: list[ColumnRecord] = Field(default_factory=list)
    metrics: dict[str, float] = Field(default_factory=dict)
    quality: dict[str, dict[str, int]] = Field(
        default_factory=dict, description="per column: missing, nan, inf, invalid, unseen"
    )
    change_point: UtcDatetime | None = Field(
        None, description="when the version's running streaks began (event time), if any"
    )
    evidence: Evidence | None = Field(
        None, description="on a record that raised an event: the labelled rows it reported"
    )
    skew: SkewRecord | None = Field(
        None, description="training-serving skew of a sample of the window (policy: skew)"
    )

    @property
    def stem(self) -> str:
        prefix = "data" if self.kind == "data" else "perf"
        return f"{prefix}-{_stamp(self.start)}-{_stamp(self.end)}"


def _stamp(t: datetime) -> str:
    return t.strftime("%Y%m%dT%H%M%S%fZ")


def column_summary(column: ColumnProfileView | None, categorical: bool) -> Summary:
    """A few numbers that show what a column looked like: quantiles, or top shares."""
    if column is None:
        return {}
    if categorical:
        from driftloop.drift._compare import frequencies

        counts = frequencies(column)
        total = sum(counts.values()) or 1.0
        top = sorted(counts.items(), key=lambda kv: -kv[1])[:5]
        return {f"share:{k}": round(v / total, 4) for k, v in top}
    summary = column.to_summary_dict()
    keys = {"mean": "distribution/mean", "q10": "distribution/q_10",
            "median": "distribution/median", "q90": "distribution/q_90"}  # fmt: skip
    out: Summary = {}
    for name, key in keys.items():
        value = summary.get(key)
        out[name] = None if value is None else round(float(value), 6)
    return out


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


class AuditStore:
    """Window records of one model under ``root/<model>``."""

    def __init__(self, root: Path, model: str) -> None:
        self.dir = root / model

    def write(self, record: WindowRecord, profile: bytes | None = None) -> Path:
        """Write the record (and the window's profile) so that a reader sees all or none."""
        folder = self.dir / record.version
        folder.mkdir(parents=True, exist_ok=True)
        if profile is not None:
            _write_atomic(folder / f"{record.stem}.whylogs", profile)
        path = folder / f"{record.stem}.json"
        _write_atomic(path, record.model_dump_json(indent=1).encode())
        return path

    def records(self, kind: Literal["data", "performance"] | None = None) -> list[WindowRecord]:
        """Every record of the model, oldest window end first."""
        if not self.dir.is_dir():
            return []
        out = [
            WindowRecord.model_validate_json(path.read_bytes())
            for path in self.dir.glob("*/*.json")
        ]
        return sorted(
            (r for r in out if kind is None or r.kind == kind), key=lambda r: (r.end, r.version)
        )

    def find(self, event_id: str) -> WindowRecord | None:
        """The record of the window that raised ``event_id`` (only files that mention the id
        are parsed), or None."""
        if not self.dir.is_dir():
            return None
        needle = event_id.encode()
        for path in sorted(self.dir.glob("*/*.json")):
            raw = path.read_bytes()
            if needle in raw:
                record = WindowRecord.model_validate_json(raw)
                if record.event_id == event_id:
                    return record
        return None

    def profile_path(self, record: WindowRecord) -> Path:
        return self.dir / record.version / f"{record.stem}.whylogs"

    def read_profile(self, record: WindowRecord) -> DatasetProfileView:
        from driftloop.profiles import deserialize

        return deserialize(self.profile_path(record).read_bytes())
