"""The monitor's training-serving skew check against a real Feast repository (file offline
store): a window served with the features the offline store holds shows no skew; a window
served by a stream whose 24-hour window was computed over 12 hours is flagged on exactly
the 24-hour features, with the sign of the error.

Real parts: Feast (registry, file offline store, point-in-time join), the monitor's
SQLite checkpoint and audit store. No Kafka: the sampled predictions and transactions are
handed to the check as the monitor's consumers would hand them."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from driftloop_monitor._asof import as_of
from driftloop_monitor._checkpoint import Checkpoint
from driftloop_monitor._skew import SkewCheck

import driftloop.features._windows as windows
from driftloop.drift import AuditStore, SkewSpec, WindowRecord, write_report
from driftloop.events import Transaction
from driftloop.features import (
    apply_repo,
    backfill_sources,
    customer_aggregates,
    open_store,
    point_in_time,
    training_entities,
)

pytestmark = pytest.mark.integration
END = datetime(2026, 5, 4, tzinfo=UTC)
WRONG = ("txn_count_24h", "amount_mean_24h", "amount_max_24h")
SEQS = itertools.count(1)


def _history(n: int = 1500, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    start = END - timedelta(days=4)
    seconds = np.sort(rng.integers(0, 4 * 86400, n))
    ts = pd.to_datetime([start + timedelta(seconds=int(s)) for s in seconds], utc=True)
    return pd.DataFrame({
        "transaction_id": [f"t{i:05d}" for i in range(n)],
        "customer_id": [f"c{c}" for c in rng.integers(0, 40, n)],
        "merchant_id": [f"m{m}" for m in rng.integers(0, 12, n)],
        "merchant_category": "grocery",
        "event_timestamp": ts,
        "amount": np.round(rng.lognormal(3.5, 1.0, n), 2),
        "device_id": [f"d{d}" for d in rng.integers(0, 80, n)],
        "country": np.where(rng.random(n) < 0.1, "FR", "DE"),
        "card_country": "DE",
        "channel": np.where(rng.random(n) < 0.4, "online", "pos"),
        "is_fraud": (rng.random(n) < 0.05).astype(np.int64),
        "label_timestamp": ts + pd.Timedelta(hours=2),
    })  # fmt: skip


@pytest.fixture(scope="module")
def world(tmp_path_factory, base_settings):
    tmp = tmp_path_factory.mktemp("skew")
    settings = base_settings.model_copy(
        update={"state_dir": tmp / "state", "feature_env": "local",
                "feature_data_uri": str(tmp / "features")}
    )  # fmt: skip
    history = _history()
    backfill_sources(settings, history, END)
    apply_repo(settings)
    return settings, history


def _wrong_24h(history: pd.DataFrame, scored: pd.DataFrame, monkeypatch) -> pd.DataFrame:
    """The 24-hour features a stream would serve whose 24-hour window spans 12 hours: the
    customer's aggregate row as of just before each scored transaction."""
    with monkeypatch.context() as m:
        m.setitem(windows.WINDOWS, "24h", 12 * windows.HOUR)
        rows = customer_aggregates(history, END)
    rows = rows.sort_values("event_timestamp")
    asked = scored[["transaction_id", "customer_id", "event_timestamp"]].sort_values(
        "event_timestamp"
    )
    got = pd.merge_asof(
        asked, rows[["customer_id", "event_timestamp", *WRONG]],
        on="event_timestamp", by="customer_id", allow_exact_matches=False,
    )  # fmt: skip
    return got.set_index("transaction_id").loc[scored["transaction_id"], list(WRONG)]


def _entities(rows: pd.DataFrame) -> pd.DataFrame:
    return training_entities(rows.drop(columns=["merchant_category"]))


def _check(settings, tmp_path, spec: SkewSpec) -> tuple[SkewCheck, AuditStore]:
    audit = AuditStore(tmp_path / "audit", "fraud")
    checkpoint = Checkpoint(tmp_path / "checkpoint.sqlite")
    return SkewCheck(spec, 200, checkpoint, audit, settings, lambda _: "fraud_v1"), audit


def _hold(check: SkewCheck, rows: pd.DataFrame, served: pd.DataFrame, version: str,
          seqs: Iterator[int]) -> list[int]:  # fmt: skip
    """Hand a window's predictions and transactions to the check, as the monitor does when
    its windows hold them as rows ``seqs``; the row numbers used."""
    held = []
    with check.checkpoint.transaction():
        for (_, row), (_, features) in zip(rows.iterrows(), served.iterrows(), strict=True):
            txn = Transaction(
                transaction_id=row["transaction_id"], customer_id=row["customer_id"],
                merchant_id=row["merchant_id"], amount=float(row["amount"]), currency="EUR",
                merchant_category=row["merchant_category"], channel=row["channel"],
                country=row["country"], card_country=row["card_country"],
                device_id=row["device_id"], event_time=row["event_timestamp"].to_pydatetime(),
            )  # fmt: skip
            check.transaction(txn)
            plain = {str(k): (None if pd.isna(v) else v) for k, v in features.items()}
            held.append(next(seqs))
            check.prediction(txn.transaction_id, version, txn.event_time.timestamp(), plain,
                             held[-1])  # fmt: skip
    return held


def _close(check: SkewCheck, audit: AuditStore, rows: pd.DataFrame, version: str,
           held: list[int]) -> None:  # fmt: skip
    """The window of ``rows`` (held as rows ``held``) closes; it is compared when due."""
    start, end = rows["event_timestamp"].min(), rows["event_timestamp"].max()
    record = WindowRecord(kind="data", model="fraud", version=version, start=start, end=end,
                          row_count=len(rows), verdict="no_drift")  # fmt: skip
    audit.write(record)
    with check.checkpoint.transaction():
        check.closed(record, held, now=0.0)


def _window(check: SkewCheck, audit: AuditStore, rows: pd.DataFrame, served: pd.DataFrame,
            version: str) -> WindowRecord:  # fmt: skip
    """One window: its predictions held, closed, compared."""
    _close(check, audit, rows, version, _hold(check, rows, served, version, SEQS))
    (done,) = check.run_due(now=1.0)
    return done


def test_a_stream_window_computed_wrong_is_flagged_and_a_right_one_is_not(
    world, tmp_path, monkeypatch
):
    settings, history = world
    store = open_store(settings)
    service = store.get_feature_service("fraud_v1")
    names = [f.name for p in service.feature_view_projections for f in p.features]
    last_day = history[history["event_timestamp"] >= END - timedelta(days=1)]
    first, second = last_day.iloc[: len(last_day) // 2], last_day.iloc[len(last_day) // 2 :]
    # Served right: what the offline store says (the online store agrees by construction).
    right = point_in_time(store, _entities(first), service)[names]
    served_wrong = point_in_time(store, _entities(second), service)[names]
    served_wrong[list(WRONG)] = _wrong_24h(history, second, monkeypatch).to_numpy()
    spec = SkewSpec(enabled=True, sample=200, settle_s=0.0, max_share=0.05)
    check, audit = _check(settings, tmp_path, spec)

    ok = _window(check, audit, first, right, "v1")
    assert ok.skew is not None and ok.skew.compared == len(first) > 100
    assert ok.skew.skewed == [], [(c.column, c.differing) for c in ok.skew.columns]
    assert {c.column for c in ok.skew.columns} == set(names)

    bad = _window(check, audit, second, served_wrong, "v1")
    assert bad.skew is not None and bad.skew.compared == len(second)
    assert set(bad.skew.skewed) == set(WRONG), bad.skew.skewed
    by = {c.column: c for c in bad.skew.columns}
    assert by["txn_count_24h"].mean_diff is not None and by["txn_count_24h"].mean_diff < 0
    assert by["txn_count_24h"].differing > 0.3
    assert by["amount_max_24h"].mean_diff is not None and by["amount_max_24h"].mean_diff < 0
    # the figures are kept in the window's record and shown by the drift report
    kept = {r.start: r for r in audit.records()}
    assert kept[bad.start].skew == bad.skew
    _, page = write_report(audit, "fraud", tmp_path / "report")
    text = page.read_text()
    assert "training-serving skew" in text and "SKEW" in text and "amount_max_24h" in text


def test_windows_that_overlap_in_time_are_each_compared_on_their_own_rows(world, tmp_path):
    """Windows closed by count overlap in event time when partitions are read unevenly (a
    backlog after a restart): each window's comparison is of the sampled rows it held, and
    comparing the first one takes nothing from the second."""
    settings, history = world
    store = open_store(settings)
    service = store.get_feature_service("fraud_v1")
    names = [f.name for p in service.feature_view_projections for f in p.features]
    last_day = history[history["event_timestamp"] >= END - timedelta(days=1)]
    # one partition read ahead: the second window's rows all lie inside the first's time span
    first, second = last_day.iloc[::2], last_day.iloc[1:-1:2]
    assert second["event_timestamp"].max() <= first["event_timestamp"].max()
    check, audit = _check(settings, tmp_path, SkewSpec(enabled=True, sample=200, settle_s=0.0))
    both = pd.concat([first, second])
    served = point_in_time(store, _entities(both), service)[names]
    held = _hold(check, both, served, "v1", SEQS)
    _close(check, audit, first, "v1", held[: len(first)])
    (one,) = check.run_due(now=1.0)
    _close(check, audit, second, "v1", held[len(first) :])
    (two,) = check.run_due(now=1.0)
    assert one.skew is not None and (one.skew.sampled, one.skew.compared) == (len(first),) * 2
    assert two.skew is not None and (two.skew.sampled, two.skew.compared) == (len(second),) * 2
    assert one.skew.skewed == [] and two.skew.skewed == []
    # nothing is left behind once both windows are compared
    assert check.checkpoint.db.execute("SELECT count(*) FROM skew_rows").fetchone() == (0,)


def test_a_checkpoint_from_before_windows_owned_their_rows_is_carried_over(world, tmp_path):
    """A checkpoint written when sampled rows were matched to windows by time gains the
    new columns on start, and the rows it holds are compared with the window they fall in."""
    import sqlite3

    settings, history = world
    old = sqlite3.connect(tmp_path / "checkpoint.sqlite")
    old.execute("CREATE TABLE skew_rows (transaction_id TEXT PRIMARY KEY, version TEXT NOT NULL,"
                " event_time REAL NOT NULL, features TEXT NOT NULL)")  # fmt: skip
    old.commit()
    old.close()
    store = open_store(settings)
    service = store.get_feature_service("fraud_v1")
    names = [f.name for p in service.feature_view_projections for f in p.features]
    rows = history[history["event_timestamp"] >= END - timedelta(hours=6)]
    served = point_in_time(store, _entities(rows), service)[names]
    check, audit = _check(settings, tmp_path, SkewSpec(enabled=True, sample=200, settle_s=0.0))
    _hold(check, rows, served, "v1", SEQS)
    with check.checkpoint.transaction():  # as the old monitor kept them: no row number
        check.checkpoint.db.execute("UPDATE skew_rows SET seq = NULL")
    _close(check, audit, rows, "v1", [])
    (done,) = check.run_due(now=1.0)
    assert done.skew is not None and (done.skew.sampled, done.skew.compared) == (len(rows),) * 2


def test_the_cheap_as_of_join_gives_feasts_point_in_time_features(world):
    """The skew check's own join reads only the sampled entities' rows; on rows without
    exact ties (one customer, one timestamp, one ``created``) it is Feast's join."""
    settings, history = world
    store = open_store(settings)
    service = store.get_feature_service("fraud_v1")
    rows = history[history["event_timestamp"] >= END - timedelta(days=2)].sample(
        300, random_state=1
    )
    rows = pd.concat([rows, rows.assign(customer_id="nobody", merchant_id="nowhere").head(3)])
    entities = _entities(rows)
    feast = point_in_time(store, entities, service)
    ours = as_of(store, entities, service)
    names = [f.name for p in service.feature_view_projections for f in p.features]
    for name in names:
        a, b = ours[name].tolist(), feast[name].tolist()
        assert [None if pd.isna(x) else x for x in a] == [None if pd.isna(x) else x for x in b], (
            name
        )
