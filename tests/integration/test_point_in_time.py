"""Point-in-time training sets through Feast, on each offline store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from driftloop.features import (
    SCHEMAS,
    aggregate_rows_frame,
    apply_repo,
    open_store,
    point_in_time,
    training_entities,
    write_batch,
)
from driftloop.settings import Settings

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
# A test takes at most about 30 s (the local-ray store, with its repo applied).
pytestmark = pytest.mark.timeout(90)


def _agg(customer: str, at: datetime, count7: int, mean7: float) -> dict[str, object]:
    return {
        "customer_id": customer, "event_timestamp": at.timestamp(), "txn_count_1h": 1,
        "txn_count_24h": 1, "txn_count_7d": count7, "amount_mean_24h": mean7,
        "amount_max_24h": mean7, "amount_mean_7d": mean7, "amount_max_7d": mean7,
        "distinct_merchants_24h": 1, "distinct_devices_7d": 1, "foreign_share_7d": 0.0,
        "online_share_24h": 0.0, "last_txn_unix": at.timestamp(),
    }  # fmt: skip


def _settings(base_settings: Settings, root: Path, env: str) -> Settings:
    return base_settings.model_copy(
        update={"state_dir": root / env / "state", "feature_env": env,
                "feature_data_uri": str(root / "features")}
    )  # fmt: skip


def _seed(settings: Settings) -> None:
    """Customer aggregates for alice and bob, snapshots of merchants m1 and m2."""
    rows = [
        _agg("alice", T0 - timedelta(days=2), 5, 20.0),
        _agg("alice", T0 - timedelta(hours=1), 6, 22.0),
        # Planted after the transactions below: must never reach them.
        _agg("alice", T0 + timedelta(minutes=30), 999, 9999.0),
        _agg("bob", T0 - timedelta(days=1), 3, 50.0),
    ]
    write_batch(aggregate_rows_frame(rows, T0 + timedelta(days=1)),
                f"{settings.feature_data}/customer_aggregates", "seed")  # fmt: skip
    merchants = pd.DataFrame({
        "merchant_id": ["m1", "m2"], "event_timestamp": [T0 - timedelta(days=1)] * 2,
        "created": [T0] * 2, "merchant_category": ["grocery", "travel"],
        "merchant_txn_count_30d": [100, 40], "merchant_fraud_rate_30d": [0.01, 0.05],
    })  # fmt: skip
    write_batch(
        merchants, f"{settings.feature_data}/merchant_stats", "seed", SCHEMAS["merchant_stats"]
    )


@pytest.fixture(scope="module", params=["local", "local-file", "local-ray"])
def repo(request, tmp_path_factory, base_settings):
    """A tiny feature repo per offline store (as-of, file, as-of on Ray), built once: the tests
    only read it."""
    settings = _settings(
        base_settings, tmp_path_factory.mktemp(f"point-in-time-{request.param}"), request.param
    )
    _seed(settings)
    apply_repo(settings)
    return settings


def test_training_rows_are_point_in_time_correct_and_none_is_dropped(repo):
    labelled = pd.DataFrame({
        "transaction_id": ["t1", "t2", "t3", "t4", "t5"],
        "customer_id": ["alice", "alice", "alice", "bob", "carol"],  # carol: no history
        "merchant_id": ["m1", "m2", "m2", "m1", "m9"],
        "event_timestamp": [T0, T0, T0 + timedelta(minutes=10), T0, T0],  # t1, t2 share key+time
        "amount": [44.0, 11.0, 22.0, 50.0, 700.0],
        "country": ["DE", "DE", "FR", "DE", "US"],
        "card_country": ["DE", "DE", "DE", "DE", "DE"],
        "is_fraud": [0, 0, 1, 0, 1],
    })  # fmt: skip
    store = open_store(repo)
    out = point_in_time(store, training_entities(labelled), store.get_feature_service("fraud_v1"))

    assert len(out) == len(labelled)
    assert list(out["transaction_id"]) == list(labelled["transaction_id"])  # order kept
    alice = out[out["customer_id"] == "alice"]
    assert list(alice["txn_count_7d"]) == [6, 6, 6]  # never the planted 999
    assert list(alice["amount_mean_7d"]) == [22.0, 22.0, 22.0]
    assert list(alice["amount_to_mean_7d"]) == pytest.approx([2.0, 0.5, 1.0])
    assert list(out["is_foreign"]) == [0, 0, 1, 0, 1]
    carol = out[out["customer_id"] == "carol"].iloc[0]
    assert pd.isna(carol["txn_count_7d"]) and pd.isna(carol["amount_mean_7d"])
    assert carol["amount_to_mean_7d"] == 1.0 and carol["is_foreign"] == 1
    assert carol["seconds_since_last_txn"] == 30 * 86400.0
    assert list(out["merchant_fraud_rate_30d"].fillna(-1)) == [0.01, 0.05, 0.05, 0.01, -1]
    assert list(out["hour_of_day"]) == [12, 12, 12, 12, 12]  # from the transaction time


def test_the_as_of_store_gives_the_file_stores_training_set(tmp_path, base_settings):
    """The local default (the as-of store) and Feast's file store on the same feature
    files: the same training set, column types included — rows sharing customer and time,
    a customer and a merchant without history, history older than the TTL (m2's snapshot
    is three days old at t4: past merchant_stats' two days)."""
    labelled = pd.DataFrame({
        "transaction_id": [f"t{i}" for i in range(7)],
        "customer_id": ["bob", "alice", "carol", "alice", "bob", "alice", "alice"],
        "merchant_id": ["m1", "m2", "m9", "m1", "m2", "m2", "m1"],
        "event_timestamp": [T0 + timedelta(minutes=m) for m in (5, 0, 3, 40, 1, 0, 0)],
        "amount": [10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0],
        "country": ["DE"] * 7,
        "card_country": ["DE", "DE", "FR", "DE", "DE", "DE", "DE"],
        "is_fraud": [0, 1, 0, 0, 1, 0, 0],
    })  # fmt: skip
    labelled.loc[4, "event_timestamp"] = T0 + timedelta(days=2)  # m2's snapshot: too old
    out = {}
    for env in ("local", "local-file"):
        settings = _settings(base_settings, tmp_path, env)
        if env == "local":
            _seed(settings)
        apply_repo(settings)
        store = open_store(settings)
        service = store.get_feature_service("fraud_v1")
        out[env] = point_in_time(store, training_entities(labelled), service)
    assert out["local"]["txn_count_7d"].notna().sum() == 6  # carol has none
    assert out["local"]["merchant_fraud_rate_30d"].isna().tolist() == [
        False, False, True, False, True, False, False
    ]  # fmt: skip
    assert list(out["local"]["transaction_id"]) == list(labelled["transaction_id"])
    pd.testing.assert_frame_equal(out["local"], out["local-file"])
