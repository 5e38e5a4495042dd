"""Eight simulated days of labelled history and their Feast features, for tests that train
(the session's shared one is :func:`tests.integration.history_worlds.history`)."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from driftloop.features import SCHEMAS, apply_repo, customer_aggregates, merchant_stats, write_batch
from driftloop.models import TrainingWindow
from driftloop.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
END = datetime(2026, 6, 1, tzinfo=UTC)
# Labels arrive about three days late: of 8 days, about 5 are labelled by the window end.
WINDOW = TrainingWindow(start=datetime(2026, 5, 24, tzinfo=UTC), end=END)


def simulated_history(base: Settings, tmp: Path, **update: Any) -> Settings:
    """Settings whose state, features and models live under ``tmp`` (plus ``update``), with
    a backfill ending at :data:`END`, its feature tables written and the repo applied."""
    cli = Path(sys.executable).parent / "driftloop-simulator"
    subprocess.run(
        [str(cli), "backfill", "--days", "8", "--customers", "300", "--tx-per-day", "2000",
         "--fraud-rate", "0.02", "--end", "2026-06-01", "--out", str(tmp / "state" / "data")],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    settings = base.model_copy(
        update={
            "state_dir": tmp / "state", "feature_env": "local",
            "feature_data_uri": str(tmp / "features"), "model_store_uri": str(tmp / "models"),
            **update,
        }
    )  # fmt: skip
    history = pd.read_parquet(tmp / "state" / "data" / "transactions.parquet")
    for name, frame in {
        "customer_aggregates": customer_aggregates(history, END),
        "merchant_stats": merchant_stats(history, END),
    }.items():
        write_batch(frame, f"{settings.feature_data}/{name}", "backfill", SCHEMAS[name])
    apply_repo(settings)
    return settings
