"""get_online_features for one entity of fraud_v1, against a raw sqlite3 point read.

Both read the same customer's row from the same SQLite online store in the same run; the
ratio is Feast's p50 over sqlite3's p50 (the cost of Feast's read path: registry lookup,
entity key serialisation, protobuf decoding, the on-demand view)."""

from __future__ import annotations

import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import percentiles, record, timed
from driftloop.features import aggregate_rows_frame, apply_repo, open_store
from driftloop.settings import Settings

CUSTOMERS = 2000
CALLS = 500


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="bench-online-"))
    settings = Settings(
        state_dir=root / "state", feature_env="local", feature_data_uri=str(root / "features")
    )
    apply_repo(settings)
    store = open_store(settings)
    now = time.time()
    rows = [
        {"customer_id": f"c{i}", "event_timestamp": now, "txn_count_1h": 1, "txn_count_24h": 3,
         "txn_count_7d": 9, "amount_mean_24h": 30.0, "amount_max_24h": 80.0,
         "amount_mean_7d": 31.0, "amount_max_7d": 120.0, "distinct_merchants_24h": 2,
         "distinct_devices_7d": 1, "foreign_share_7d": 0.1, "online_share_24h": 0.3,
         "last_txn_unix": now - 3600}
        for i in range(CUSTOMERS)
    ]  # fmt: skip
    store.push("customer_aggregates_push", aggregate_rows_frame(rows, datetime.now(UTC)))
    service = store.get_feature_service("fraud_v1")
    entity = {"customer_id": "c1234", "merchant_id": "m1", "amount": 55.0, "country": "DE",
              "card_country": "DE", "txn_unix": now}  # fmt: skip
    result = store.get_online_features(features=service, entity_rows=[entity]).to_dict()
    assert result["txn_count_7d"] == [9], result

    db = sqlite3.connect(settings.state_dir / "feast" / "online.db", check_same_thread=False)
    (key,) = db.execute(
        "SELECT entity_key FROM driftloop_customer_aggregates WHERE feature_name = 'txn_count_7d'"
        " LIMIT 1 OFFSET 1234"
    ).fetchone()

    def raw() -> None:
        rows = db.execute(
            "SELECT feature_name, value, event_ts FROM driftloop_customer_aggregates"
            " WHERE entity_key = ?",
            (key,),
        ).fetchall()
        assert len(rows) == 12

    feast_s = timed(
        lambda: store.get_online_features(features=service, entity_rows=[entity]), CALLS
    )
    refs = [f"customer_aggregates:{f}" for f in ("txn_count_7d", "amount_mean_7d")]
    one_view_s = timed(
        lambda: store.get_online_features(features=refs, entity_rows=[{"customer_id": "c1234"}]),
        CALLS,
    )
    raw_s = timed(raw, CALLS * 4)
    f, r, v = percentiles(feast_s), percentiles(raw_s), percentiles(one_view_s)
    record(
        "online_read",
        {
            "calls": CALLS,
            "feast_p50_ms": f["p50"] * 1e3,
            "feast_p99_ms": f["p99"] * 1e3,
            "feast_one_view_no_odfv_p50_ms": v["p50"] * 1e3,
            "sqlite3_p50_ms": r["p50"] * 1e3,
            "sqlite3_p99_ms": r["p99"] * 1e3,
            "ratio_p50_feast_over_sqlite3": f["p50"] / r["p50"],
            "ratio_p99_feast_over_sqlite3": f["p99"] / r["p99"],
        },
    )


if __name__ == "__main__":
    main()
