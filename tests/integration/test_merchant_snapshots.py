"""The stream service's daily merchant snapshot, against the real broker and a real Feast
repository: after the backfill, every midnight both streams have passed gets the snapshot
the backfill would have made, offline and online.

Transactions and their labels go to Kafka in event-time order here (a label six hours
after its payment), as a label feed delivers them, so every label stamped before a
midnight has arrived when its snapshot is made and the rows are exact. (The stream
module's world sends some labels ahead of their payments, which moves the labels'
watermark; its restart test compares what that leaves exact: days, counts, categories.)
"""

from __future__ import annotations

import threading
from datetime import timedelta

import pandas as pd
import pytest

from driftloop.events import Label, Transaction
from driftloop.features import (
    MERCHANT_STATS_SCHEMA,
    list_batches,
    merchant_stats,
    open_store,
    write_batch,
)
from driftloop.kafka import EventProducer
from tests.integration.test_stream_service import START, _events, _free_port, _repo

pytestmark = pytest.mark.timeout(180)

LATENESS_S = 300.0
BACKFILLED = START + timedelta(days=2)
"""The backfill's job ran at this midnight (its newest snapshot)."""


@pytest.fixture
def snapshotted(own_topics, base_settings, tmp_path):
    """One run of the stream service over payments and labels in event-time order after a
    backfill of their first two days: (settings, the history they make)."""
    from driftloop_stream import StreamService, StreamSettings

    events = _events(seed=11)
    labels = [Label(transaction_id=e.transaction_id, is_fraud=i % 7 == 0,
                    event_time=e.event_time + timedelta(hours=6))
              for i, e in enumerate(events)]  # fmt: skip
    feed = sorted([*events, *labels], key=lambda e: e.event_time)
    with EventProducer(own_topics) as producer:
        for event in feed:
            producer.send(event)
        producer.flush()
    repo, _ = _repo(base_settings, tmp_path, own_topics.topic_prefix)
    history = _history(events, labels)
    # the backfill: the snapshots of its midnights (June 2 and 3), made on June 3
    backfill = merchant_stats(history[history["event_timestamp"] < BACKFILLED], BACKFILLED)
    write_batch(backfill, f"{repo.feature_data}/merchant_stats", "backfill", MERCHANT_STATS_SCHEMA)
    service = StreamService(
        StreamSettings(
            **repo.model_dump(), stream_group="merchants", stream_metrics_port=_free_port(),
            stream_lateness_s=LATENESS_S, stream_batch_max=300, stream_linger_s=0.1,
        )
    )  # fmt: skip
    try:
        service.run(threading.Event(), exit_when_idle_s=3)
    finally:
        service.close()
    return repo, history


def _history(events: list[Transaction], labels: list[Label]) -> pd.DataFrame:
    by_id = {label.transaction_id: label for label in labels}
    return pd.DataFrame(
        {
            "transaction_id": [e.transaction_id for e in events],
            "merchant_id": [e.merchant_id for e in events],
            "merchant_category": [e.merchant_category for e in events],
            "event_timestamp": pd.to_datetime([e.event_time for e in events], utc=True),
            "is_fraud": [by_id[e.transaction_id].is_fraud for e in events],
            "label_timestamp": pd.to_datetime(
                [by_id[e.transaction_id].event_time for e in events], utc=True
            ),
        }
    )


def test_every_settled_midnight_gets_the_backfills_snapshot_offline_and_online(snapshotted):
    repo, history = snapshotted
    source = f"{repo.feature_data}/merchant_stats"
    daily = [name for name in list_batches(source) if name.startswith("daily-")]
    made = pd.concat([pd.read_parquet(f"{source}/{name}.parquet") for name in daily])
    days = sorted(made["event_timestamp"].unique())
    # every midnight after the backfill's that both streams passed by more than the
    # lateness: the payments' watermark is the older (labels run six hours behind... and
    # on, past the payments' end), and no day is skipped or made twice
    newest_payment = history["event_timestamp"].max()
    settled = (newest_payment - pd.Timedelta(seconds=LATENESS_S)).floor("D")
    expected_days = pd.date_range(pd.Timestamp(BACKFILLED) + pd.Timedelta(days=1), settled)
    assert len(expected_days) >= 3
    assert [pd.Timestamp(d) for d in days] == list(expected_days), days
    assert len(daily) == len(days)
    # each the snapshot the backfill would have made of that midnight
    backfill = merchant_stats(history, settled.to_pydatetime() + timedelta(seconds=1))
    backfill = backfill[backfill["event_timestamp"].isin(days)]
    columns = ["merchant_id", "event_timestamp", "merchant_txn_count_30d",
               "merchant_fraud_rate_30d"]  # fmt: skip
    key = ["event_timestamp", "merchant_id"]
    got = made[columns].sort_values(key).reset_index(drop=True)
    want = backfill[columns].sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want, check_dtype=False)
    # a merchant's category: its most frequent one in the 30 days before the midnight
    last = made[made["event_timestamp"] == days[-1]].set_index("merchant_id")
    window = history[history["event_timestamp"] < days[-1]]
    modes = window.groupby("merchant_id")["merchant_category"].agg(lambda s: s.mode().iloc[0])
    assert last["merchant_category"].to_dict() == modes.reindex(last.index).to_dict()
    # and online: the newest snapshot is what serving reads
    store = open_store(repo)
    refs = [f"merchant_stats:{c}" for c in ("merchant_txn_count_30d", "merchant_category")]
    merchants = sorted(last.index)
    online = store.get_online_features(
        features=refs, entity_rows=[{"merchant_id": m} for m in merchants]
    ).to_df()
    assert (
        online["merchant_txn_count_30d"].tolist()
        == last.loc[merchants, "merchant_txn_count_30d"].tolist()
    )
    assert online["merchant_category"].tolist() == last.loc[merchants, "merchant_category"].tolist()
