"""Open windows per model version, and when they close (see ``WindowSpec``)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

from driftloop.drift import WindowSpec
from driftloop.events import FeatureValue
from driftloop_monitor._checkpoint import Checkpoint
from driftloop_monitor._frame import Row


@dataclass(frozen=True)
class ClosedWindow:
    version: str
    start: datetime
    end: datetime
    rows: list[Row]


def _utc(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


class Windows:
    def __init__(self, spec: WindowSpec, checkpoint: Checkpoint) -> None:
        self._spec = spec
        self._checkpoint = checkpoint
        self._aligned = spec.rows is None
        self.open: dict[tuple[str, int], list[Row]] = {}
        for version, bucket, row in checkpoint.open_rows():
            self.open.setdefault((version, bucket), []).append(row)
        self._newest: dict[int, float] = {
            int(key.split(".")[1]): value for key, value in checkpoint.items("newest.")
        }
        self.late = 0

    @property
    def watermark(self) -> float:
        """Event time that every partition seen so far has reached: a partition read ahead
        of the others (a backlog is fetched partition by partition) closes no window."""
        return min(self._newest.values(), default=-math.inf)

    @property
    def rows(self) -> int:
        return sum(len(rows) for rows in self.open.values())

    def add(
        self,
        partition: int,
        version: str,
        t: float,
        score: float,
        features: dict[str, FeatureValue],
    ) -> tuple[int | None, ClosedWindow | None]:
        """Hold a prediction; return its row's sequence number and the window it completes,
        if any. A prediction for an aligned window that has already closed is late: counted
        and left out (no sequence number)."""
        self._newest[partition] = max(self._newest.get(partition, t), t)
        bucket = 0
        if self._aligned:
            duration = self._duration
            bucket = math.floor(t / duration)
            if (bucket + 1) * duration + self._spec.lateness_s <= self.watermark:
                self.late += 1
                return None, None
        seq = self._checkpoint.add_row(version, bucket, t, score, features)
        rows = self.open.setdefault((version, bucket), [])
        rows.append(Row(seq, t, score, features))
        if self._spec.rows is not None and len(rows) >= self._spec.rows:
            return seq, self._close(version, bucket)
        return seq, None

    def expire(self) -> list[ClosedWindow]:
        """Windows whose time is up by the newest event time seen."""
        if self._spec.duration_s is None:
            return []
        due = []
        reach = self.watermark - self._spec.lateness_s
        for (version, bucket), rows in self.open.items():
            if self._aligned:
                ends = (bucket + 1) * self._duration
            else:
                ends = rows[0].event_time + self._duration
            if rows and ends <= reach:
                due.append((version, bucket))
        return [self._close(v, b) for v, b in sorted(due, key=lambda k: (k[1], k[0]))]

    def save(self) -> None:
        for partition, t in self._newest.items():
            self._checkpoint.put(f"newest.{partition}", t)

    @property
    def _duration(self) -> float:
        assert self._spec.duration_s is not None
        return self._spec.duration_s

    def _close(self, version: str, bucket: int) -> ClosedWindow:
        rows = self.open.pop((version, bucket))
        self._checkpoint.drop_rows(version, bucket, rows[-1].seq)
        if self._aligned:
            start, end = bucket * self._duration, (bucket + 1) * self._duration
        else:
            times = [r.event_time for r in rows]
            start, end = min(times), max(times)
        return ClosedWindow(version, _utc(start), _utc(end), rows)
