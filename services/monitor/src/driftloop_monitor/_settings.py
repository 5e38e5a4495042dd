"""The monitor's settings: driftloop's, plus its own ``DRIFTLOOP_MONITOR_*`` knobs."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from driftloop.settings import Settings


class MonitorSettings(Settings):
    monitor_model: str = Field("fraud", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
    monitor_policy: Path | None = None  # default <deploy_dir>/apps/<model>/monitor.yaml
    monitor_group: str = "driftloop-monitor"
    monitor_batch_max: int = Field(2000, ge=1, description="records per micro-batch at most")
    monitor_linger_s: float = Field(0.5, ge=0, description="how long a micro-batch may gather")
    monitor_fetch_bytes: int = Field(
        32_768, ge=1024, description="bytes fetched per partition and request"
    )
    monitor_metrics_port: int = Field(9102, ge=0, le=65535)
    monitor_dir: Path | None = None  # default <state_dir>/monitor

    @property
    def policy_path(self) -> Path:
        default = self.deploy_dir / "apps" / self.monitor_model / "monitor.yaml"
        return (self.monitor_policy or default).expanduser().absolute()

    @property
    def audit_root(self) -> Path:
        """Window records and profiles live under ``<audit_root>/<model>/``."""
        return (self.monitor_dir or self.state_dir / "monitor").expanduser().absolute()

    @property
    def checkpoint_path(self) -> Path:
        return self.audit_root / self.monitor_model / "checkpoint.sqlite"
