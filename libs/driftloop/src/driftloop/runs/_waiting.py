"""Models whose retraining waits for evidence: one JSON file per model under
``<runs>/.waiting/<model>.json``, written by the trigger service (which keeps the durable
state in its own database and rewrites these files from it) and read by ``driftloop
runs``. A file is replaced atomically, and removed when the wait ends."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from driftloop.events import UtcDatetime, utcnow

WAITING_DIR = ".waiting"  # not a run: RunStore reads only <runs>/<run_id>/run.json


class Waiting(BaseModel):
    """A severe event held until enough labelled traffic after the change point exists.

    ``run_id`` is the run the latest held event would start; ``until`` is when the run
    starts anyway (the policy's ``max_wait`` after ``since``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
    status: Literal["waiting"] = "waiting"
    run_id: str
    trigger_event_id: str
    since: UtcDatetime
    until: UtcDatetime
    change_point: UtcDatetime | None = None
    labelled_rows: int = Field(ge=0)
    positives: int = Field(ge=0)
    min_labelled_rows: int = Field(ge=0)
    min_positives: int = Field(ge=0)
    updated_at: UtcDatetime = Field(default_factory=utcnow)

    def line(self) -> str:
        return (
            f"{self.model}: waiting for evidence since {self.since:%Y-%m-%d %H:%M:%S}:"
            f" {self.labelled_rows}/{self.min_labelled_rows} labelled rows,"
            f" {self.positives}/{self.min_positives} positives"
            f" (max wait until {self.until:%Y-%m-%d %H:%M:%S})"
        )


class WaitingStore:
    """Waiting records beside the run records of ``runs_root``."""

    def __init__(self, runs_root: str | Path) -> None:
        self.root = Path(runs_root) / WAITING_DIR

    def path(self, model: str) -> Path:
        return self.root / f"{model}.json"

    def put(self, record: Waiting) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".waiting-", suffix=".tmp")
        with os.fdopen(fd, "w") as out:
            out.write(record.model_dump_json(indent=2))
            out.flush()
            os.fsync(out.fileno())
        Path(tmp).replace(self.path(record.model))

    def remove(self, model: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(model).unlink()

    def all(self, model: str | None = None) -> list[Waiting]:
        """Every readable record (a file that does not validate is passed over), by model."""
        out = []
        for path in sorted(self.root.glob("*.json")) if self.root.is_dir() else []:
            try:
                record = Waiting.model_validate_json(path.read_text())
            except (OSError, ValidationError):
                continue
            if model is None or record.model == model:
                out.append(record)
        return out

    def keep_only(self, models: set[str]) -> None:
        """Remove the records of every other model (their wait has ended)."""
        for record in self.all():
            if record.model not in models:
                self.remove(record.model)
