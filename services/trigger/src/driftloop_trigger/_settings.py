"""The trigger's settings: driftloop's, plus its own ``DRIFTLOOP_TRIGGER_*`` knobs."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from driftloop.settings import Settings

KillPoint = Literal["before_submit", "after_submit"]


class TriggerSettings(Settings):
    trigger_group: str = "driftloop-trigger"
    trigger_batch_max: int = Field(500, ge=1, description="records per micro-batch at most")
    trigger_linger_s: float = Field(0.2, ge=0, description="how long a micro-batch may gather")
    trigger_metrics_port: int = Field(9103, ge=0, le=65535)
    trigger_db: Path | None = None  # default <state_dir>/trigger/decisions.sqlite
    trigger_retry_max_s: float = Field(
        60.0, gt=0, description="longest wait between attempts of a failed submission"
    )
    trigger_recover_s: float = Field(
        30.0,
        gt=0,
        description="how often runs of the local executor without a live driver are started,"
        " resumed or failed (also once at start)",
    )
    # A fault hook for tests of crash safety: SIGKILL the process itself at that point of
    # the first submission (after its decision is recorded). Never set it in production.
    trigger_kill_at: KillPoint | None = None

    @property
    def db_path(self) -> Path:
        return (self.trigger_db or self.state_dir / "trigger" / "decisions.sqlite").absolute()

    @property
    def policy_root(self) -> Path:
        """Per-model policies live at ``<policy_root>/<model>/trigger.yaml``."""
        return self.deploy_dir / "apps"
