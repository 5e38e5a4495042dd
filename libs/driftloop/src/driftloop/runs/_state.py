"""Run records: one JSON file per run under ``<runs>/<run_id>/run.json``, replaced
atomically on every change, so a crash leaves the previous state, never half of one."""

from __future__ import annotations

import os
import tempfile
import uuid
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from driftloop.events import UtcDatetime, utcnow

Status = Literal["pending", "running", "succeeded", "failed"]
TERMINAL = ("succeeded", "failed")


class AlreadySubmitted(Exception):
    """A run with that id exists: the submission happened before."""

    def __init__(self, run_id: str) -> None:
        super().__init__(f"run {run_id} was already submitted")
        self.run_id = run_id


class StepState(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    status: Status = "pending"
    attempts: int = 0
    job: str | None = Field(None, description="the Ray Job of the latest attempt")
    driver: str | None = Field(
        None, description="the driver that ran the latest attempt in its own process (no job)"
    )
    result: str | None = None
    error: str | None = None
    started_at: UtcDatetime | None = None
    finished_at: UtcDatetime | None = None


class RunRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    run_id: str
    nonce: str = Field(
        default_factory=lambda: uuid.uuid4().hex[:8],
        description="makes this record's Ray Job ids unique on a cluster that saw the id before",
    )
    workflow: str
    model: str
    parameters: dict[str, str]
    status: Status = "pending"
    message: str = ""
    created_at: UtcDatetime = Field(default_factory=utcnow)
    updated_at: UtcDatetime = Field(default_factory=utcnow)
    drivers: list[str] = Field(default_factory=list, description="Ray Jobs that drove it")
    steps: dict[str, StepState] = Field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL

    def duration_s(self) -> float:
        return (self.updated_at - self.created_at).total_seconds()


class RunStore:
    """Run records in a local directory."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path(self, run_id: str) -> Path:
        return self.root / run_id / "run.json"

    def create(self, record: RunRecord) -> None:
        """Store a new run; :class:`AlreadySubmitted` if its id exists (atomic: mkdir)."""
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            (self.root / record.run_id).mkdir()
        except FileExistsError:
            raise AlreadySubmitted(record.run_id) from None
        self.save(record)

    def save(self, record: RunRecord) -> None:
        record.updated_at = utcnow()
        target = self.path(record.run_id)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".run-", suffix=".json")
        with os.fdopen(fd, "w") as out:
            out.write(record.model_dump_json(indent=2))
            out.flush()
            os.fsync(out.fileno())
        Path(tmp).replace(target)

    def get(self, run_id: str) -> RunRecord:
        return RunRecord.model_validate_json(self.path(run_id).read_text())

    def all(self, model: str | None = None) -> list[RunRecord]:
        """Every readable run, oldest first."""
        out = []
        for path in sorted(self.root.glob("*/run.json")) if self.root.is_dir() else []:
            record = RunRecord.model_validate_json(path.read_text())
            if model is None or record.model == model:
                out.append(record)
        return sorted(out, key=lambda r: r.created_at)

    def active(self, model: str) -> list[RunRecord]:
        return [r for r in self.all(model) if not r.finished]

    def started_since(self, model: str, since: datetime) -> list[RunRecord]:
        return [r for r in self.all(model) if r.created_at >= since]
