"""The stream service's settings: driftloop's, plus its own ``DRIFTLOOP_STREAM_*`` knobs."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from driftloop.settings import Settings


class StreamSettings(Settings):
    stream_group: str = "driftloop-stream"
    stream_lateness_s: float = Field(300.0, ge=0, description="how late an event may arrive")
    stream_batch_max: int = Field(2000, ge=1, description="records per micro-batch at most")
    stream_linger_s: float = Field(1.0, ge=0, description="how long a micro-batch may gather")
    stream_metrics_port: int = Field(9101, ge=0, le=65535)
    stream_checkpoint: Path | None = None  # default <state_dir>/stream/checkpoint.sqlite
    stream_label_horizon_s: float = Field(
        60 * 86400.0, gt=0, description="how long a transaction waits for its label"
    )
    stream_seed_history: Path | None = Field(
        None,
        description="a first start continues this history's windows "
        "(default <state_dir>/data/transactions.parquet, when it exists)",
    )

    @property
    def seed_history_path(self) -> Path:
        return self.stream_seed_history or self.state_dir / "data" / "transactions.parquet"

    @property
    def labelled_dir(self) -> str:
        """Where labelled history from the stream lands (beside the backfill's file)."""
        return str(self.state_dir / "data" / "labelled")

    @property
    def served_dir(self) -> str:
        """Where the served-features log lands (one file per batch of predictions)."""
        return str(self.state_dir / "data" / "served")

    @property
    def checkpoint_path(self) -> Path:
        return self.stream_checkpoint or self.state_dir / "stream" / "checkpoint.sqlite"
