"""The sync service's settings: the common ones plus ``sync_*`` (``DRIFTLOOP_SYNC_*``)."""

from __future__ import annotations

from pydantic import Field

from driftloop.settings import Settings


class SyncSettings(Settings):
    sync_repo: str | None = Field(None, description="path or URL; default: git_repo")
    sync_branch: str | None = Field(None, description="default: git_branch")
    sync_apps_dir: str = Field("deploy/apps", description="serve configs: <dir>/*/serve.yaml")
    sync_interval_s: float = Field(10.0, gt=0)
    sync_ready_timeout_s: float = Field(180.0, gt=0)
    sync_poll_s: float = Field(
        0.5, gt=0, le=10, description="after an apply, how often Serve and /healthz are asked"
    )
    sync_metrics_port: int = Field(9104, ge=0, le=65535)

    @property
    def watched_repo(self) -> str:
        return self.sync_repo or self.git_repo

    @property
    def watched_branch(self) -> str:
        return self.sync_branch or self.git_branch
