"""What the sync service last did, in ``<state_dir>/sync/state.json`` — read by
``driftloop sync status`` (the CLI never imports the service)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from driftloop.events import UtcDatetime
from driftloop.settings import Settings


class SyncState(BaseModel):
    model_config = ConfigDict(extra="forbid")

    repo: str = ""
    branch: str = ""
    git_sha: str | None = Field(None, description="the branch's head at the last check")
    synced_sha: str | None = Field(None, description="the last sha applied and healthy")
    failed_sha: str | None = Field(None, description="a sha that failed; not retried")
    last_error: str | None = None
    last_error_at: UtcDatetime | None = None
    last_error_transient: bool = Field(
        False, description="the last error was the environment's: retried next interval"
    )
    last_check: UtcDatetime | None = None
    last_apply: UtcDatetime | None = None
    applications: dict[str, str] = Field(default_factory=dict, description="name -> status")
    heals: int = Field(0, description="live configs changed by hand and put back")


def state_path(settings: Settings) -> Path:
    return settings.state_dir / "sync" / "state.json"


def read_state(settings: Settings) -> SyncState | None:
    path = state_path(settings)
    if not path.is_file():
        return None
    return SyncState.model_validate_json(path.read_text())


def write_state(settings: Settings, state: SyncState) -> None:
    path = state_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".state-", suffix=".json")
    with os.fdopen(fd, "w") as out:
        out.write(state.model_dump_json(indent=2))
    Path(tmp).replace(path)
