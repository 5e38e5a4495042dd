"""Training reads the backfilled history and the labelled rows the stream joined since."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
from driftloop_stream._labelled import HISTORY_SCHEMA

from driftloop.features import write_batch
from driftloop.models import TrainingWindow
from driftloop.settings import Settings
from driftloop.training import ModelSpec
from driftloop.training._dataset import read_labelled

T0 = datetime(2026, 6, 1, tzinfo=UTC)


def _rows(ids: list[str], start: datetime) -> pd.DataFrame:
    n = len(ids)
    times = [start + timedelta(hours=i) for i in range(n)]
    return pd.DataFrame({
        "transaction_id": ids, "customer_id": "c1", "merchant_id": "m1", "amount": 10.0,
        "currency": "EUR", "merchant_category": "grocery", "channel": "pos", "country": "DE",
        "card_country": "DE", "device_id": "d1", "event_timestamp": pd.to_datetime(times, utc=True),
        "is_fraud": [i % 2 == 0 for i in range(n)],
        "label_timestamp": pd.to_datetime([t + timedelta(days=1) for t in times], utc=True),
        "fraud_pattern": None,
    })  # fmt: skip


def test_streamed_labels_extend_the_backfill_and_a_backfilled_row_wins(tmp_path):
    settings = Settings(state_dir=tmp_path)
    (tmp_path / "data").mkdir()
    _rows(["a", "b"], T0).to_parquet(tmp_path / "data" / "transactions.parquet")
    streamed = _rows(["b", "c"], T0 + timedelta(hours=1))
    streamed.loc[0, "amount"] = 99.0  # the same transaction seen again: the backfill's row stays
    write_batch(streamed, str(tmp_path / "data" / "labelled"), "labels-p0-1-3", HISTORY_SCHEMA)
    window = TrainingWindow(start=T0, end=T0 + timedelta(days=5))
    out = read_labelled(ModelSpec(name="fraud"), settings, window)
    assert list(out["transaction_id"]) == ["a", "b", "c"]
    assert out.loc[out["transaction_id"] == "b", "amount"].item() == 10.0
    # A spec with its own history file reads that alone.
    spec = ModelSpec(name="fraud", history=str(tmp_path / "data" / "transactions.parquet"))
    assert list(read_labelled(spec, settings, window)["transaction_id"]) == ["a", "b"]
