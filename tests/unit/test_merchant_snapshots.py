"""Daily merchant snapshots stop at the job's own time: none is stamped in its future."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd

from driftloop.features._history import merchant_stats


def _history(end: datetime) -> pd.DataFrame:
    times = pd.date_range(end - pd.Timedelta(days=4), end, freq="37min", tz="UTC")
    return pd.DataFrame(
        {
            "merchant_id": [f"m{i % 3}" for i in range(len(times))],
            "merchant_category": ["grocery"] * len(times),
            "event_timestamp": times,
            "is_fraud": [i % 11 == 0 for i in range(len(times))],
            # every label arrives six hours after its payment
            "label_timestamp": times + pd.Timedelta(hours=6),
        }
    )


def test_snapshots_end_at_the_last_midnight_before_the_job_and_count_only_known_labels():
    end = datetime(2026, 6, 1, 14, 30, tzinfo=UTC)
    history = _history(end)
    snaps = merchant_stats(history, end)
    last = pd.Timestamp("2026-06-01", tz="UTC")
    assert snaps["event_timestamp"].max() == last  # not 2026-06-02: after the job ran
    assert snaps["event_timestamp"].min() == pd.Timestamp("2026-05-29", tz="UTC")
    at_last = snaps[snaps["event_timestamp"] == last].set_index("merchant_id")
    window = history[history["event_timestamp"] < last]
    known = window[window["label_timestamp"] < last]
    for merchant, row in at_last.iterrows():
        mine = known[known["merchant_id"] == merchant]
        assert row["merchant_fraud_rate_30d"] == mine["is_fraud"].mean()
        assert row["merchant_txn_count_30d"] == (window["merchant_id"] == merchant).sum()


def test_a_job_before_the_first_midnight_writes_no_snapshot():
    end = datetime(2026, 6, 1, 14, 30, tzinfo=UTC)
    history = _history(end)
    early = history[history["event_timestamp"] >= pd.Timestamp("2026-05-31 01:00", tz="UTC")]
    snaps = merchant_stats(early, datetime(2026, 5, 31, 23, 0, tzinfo=UTC))
    assert snaps.empty and "merchant_fraud_rate_30d" in snaps.columns
