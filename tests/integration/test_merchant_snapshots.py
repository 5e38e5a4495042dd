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

from driftloop.events import Label
from driftloop.features import merchant_stats, open_store, read_source
from driftloop.kafka import EventProducer
from tests.integration.test_stream_service import START, _events, _free_port, _repo

pytestmark = pytest.mark.timeout(180)

LATENESS_S = 300.0


@pytest.fixture
def snapshotted(own_topics, base_settings, tmp_path):
    """One run of the stream service over payments and labels in event-time order:
    (settings, the history they make, the service's last merchant snapshot day)."""
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
    by_id = {label.transaction_id: label for label in labels}
    history = pd.DataFrame(
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
    return repo, history


def test_every_settled_midnight_gets_the_backfills_snapshot_offline_and_online(snapshotted):
    repo, history = snapshotted
    made = read_source(f"{repo.feature_data}/merchant_stats")
    days = sorted(made["event_timestamp"].unique())
    # both streams passed a midnight by more than the lateness: the payments' watermark is
    # the older one (labels run six hours behind payments... and beyond their end)
    newest_payment = history["event_timestamp"].max()
    settled = (newest_payment - pd.Timedelta(seconds=LATENESS_S)).floor("D")
    assert days[-1] == settled and len(days) >= 5, days
    expected_days = pd.date_range(pd.Timestamp(START) + pd.Timedelta(days=1), settled, freq="D")
    assert [pd.Timestamp(d) for d in days] == list(expected_days), days  # the first is empty
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
