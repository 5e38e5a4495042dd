"""The stream service against the real broker and a real Feast repository."""

from __future__ import annotations

import os
import random
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from driftloop_stream._labelled import HISTORY_SCHEMA
from driftloop_stream._served import SERVED_SCHEMA

from driftloop.events import DeadLetter, Label, Prediction, Transaction
from driftloop.features import CUSTOMER_FEATURES, apply_repo, open_store, point_in_time, read_source
from driftloop.kafka import EventConsumer, EventProducer
from driftloop.settings import Settings
from tests.polling import kill_past

# about 3x what it needs: the uninterrupted run (~25 s) and a kill and restart (~35 s)
pytestmark = pytest.mark.timeout(180)

ROOT = Path(__file__).resolve().parents[2]
START = datetime(2026, 6, 1, tzinfo=UTC)
CUSTOMERS = 40
N = 2400


def _events(seed: int = 7) -> list[Transaction]:
    rng = random.Random(seed)
    out = []
    t = START
    for i in range(N):
        t += timedelta(seconds=rng.expovariate(1 / 240))
        jitter = timedelta(seconds=-rng.uniform(0, 200)) if rng.random() < 0.05 else timedelta()
        home = rng.choice(["DE", "FR"])
        out.append(Transaction(
            transaction_id=f"s-{i}", customer_id=f"c{rng.randrange(CUSTOMERS)}",
            merchant_id=f"m{rng.randrange(30)}", amount=round(rng.lognormvariate(3.5, 1), 2),
            currency="EUR", merchant_category=rng.choice(["grocery", "fuel", "travel"]),
            channel=rng.choice(["pos", "online"]),
            country=home if rng.random() < 0.9 else "US", card_country=home,
            device_id=f"d{rng.randrange(3)}", event_time=t + jitter,  # 5 % arrive late
        ))  # fmt: skip
    return out


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _repo(base: Settings, root: Path, prefix: str) -> tuple[Settings, dict[str, str]]:
    settings = base.model_copy(
        update={
            "state_dir": root / "state",
            "feature_env": "local",
            "feature_data_uri": str(root / "features"),
            "topic_prefix": prefix,
        }
    )
    apply_repo(settings)
    env = {
        "DRIFTLOOP_STATE_DIR": str(settings.state_dir),
        "DRIFTLOOP_FEATURE_ENV": "local",
        "DRIFTLOOP_FEATURE_DATA_URI": settings.feature_data,
        "DRIFTLOOP_TOPIC_PREFIX": prefix,
        "DRIFTLOOP_STREAM_LATENESS_S": "300",
        "DRIFTLOOP_STREAM_BATCH_MAX": "200",
        "DRIFTLOOP_STREAM_LINGER_S": "0.2",
        "DRIFTLOOP_STREAM_METRICS_PORT": str(_free_port()),
    }
    return settings, env


def _start(env: dict[str, str], idle_s: float = 4) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "driftloop_stream.cli", "run", "--exit-when-idle", str(idle_s)],
        cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip


def _online(settings: Settings, customers: list[str]) -> pd.DataFrame:
    store = open_store(settings)
    refs = [f"customer_aggregates:{f}" for f in CUSTOMER_FEATURES]
    rows = [{"customer_id": c} for c in customers]
    frame = store.get_online_features(features=refs, entity_rows=rows).to_df()
    return frame.sort_values("customer_id").reset_index(drop=True)


def _offline(settings: Settings) -> pd.DataFrame:
    frame = read_source(f"{settings.feature_data}/customer_aggregates").drop(columns="created")
    return frame.sort_values(list(frame.columns)).reset_index(drop=True)


@pytest.fixture(scope="module")
def published(base_settings, tmp_path_factory):
    """The same events, plus two malformed records and one far-too-late event, on a topic
    prefix of this module's own."""
    from tests.integration.conftest import _isolated

    gen = _isolated(base_settings)
    settings = next(gen)
    events = _events()
    labels = _labels(events)
    early = {label.transaction_id for label in labels[::25]}  # these arrive before theirs
    with EventProducer(settings) as producer:
        for label in labels:
            if label.transaction_id in early:
                producer.send(label)
        for i, event in enumerate(events):
            producer.send(event)
            if i == 100:
                producer.send_raw("transactions", b"{not json", key=b"c1")
            if i == 1500:
                producer.send_raw("transactions", b'{"transaction_id": "x"}', key=b"c1")
        too_late = events[-1].model_copy(
            update={
                "transaction_id": "too-late",
                "event_time": events[-1].event_time - timedelta(days=1),
                "customer_id": events[-1].customer_id,
                "event_id": "",
            }
        )
        producer.send(Transaction.model_validate(too_late.model_dump()))
        for label in labels:
            if label.transaction_id not in early:
                producer.send(label)
        for i, prediction in enumerate(_predictions(events)):
            producer.send(prediction)
            if i % 4 == 0:  # a shadow scored it too: not what the endpoint served
                shadow = prediction.model_dump() | {
                    "role": "shadow",
                    "event_id": "",
                    "model_version": "2",
                    "score": 0.9,
                }
                producer.send(Prediction.model_validate(shadow))
            if i == 10:
                producer.send_raw("predictions", b'{"transaction_id": "p"}', key=b"p")
        producer.flush()
    yield settings, events
    next(gen, None)


def _labels(events: list[Transaction]) -> list[Label]:
    """Labels for 70 % of the transactions, three days after each, about 3 % fraud."""
    return [
        Label(transaction_id=e.transaction_id, is_fraud=i % 31 == 0,
              event_time=e.event_time + timedelta(days=3))
        for i, e in enumerate(events)
        if i % 10 < 7
    ]  # fmt: skip


def _predictions(events: list[Transaction]) -> list[Prediction]:
    """What the endpoint logged for every second transaction, nulls among the features;
    every tenth answered by a canary (version 3)."""
    return [
        Prediction(request_id=f"r-{i}", transaction_id=e.transaction_id, model_name="fraud",
                   model_version="3" if i % 10 == 0 else "1",
                   role="canary" if i % 10 == 0 else "serving",
                   score=0.1, decision=False, threshold=0.5,
                   features={"amount": e.amount, "merchant_category": e.merchant_category,
                             "txn_count_1h": None if i % 6 == 0 else i % 5},
                   latency_ms=2.0, event_time=e.event_time)
        for i, e in enumerate(events)
        if i % 2 == 0
    ]  # fmt: skip


def _served(settings: Settings) -> pd.DataFrame:
    frame = read_source(str(settings.state_dir / "data" / "served"))
    return frame.sort_values("request_id").reset_index(drop=True)


def _labelled(settings: Settings) -> pd.DataFrame:
    frame = read_source(str(settings.state_dir / "data" / "labelled"))
    return frame.sort_values("transaction_id").reset_index(drop=True)


def _scrape(port: int) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            return str(answer.read().decode())
    except OSError:  # not listening yet, or no longer
        return ""


@pytest.fixture(scope="module")
def uninterrupted(published, base_settings, tmp_path_factory):
    """One run over the whole stream until idle — the service in this process, so its
    metrics can be read while it runs (the restart test runs ``driftloop-stream`` as a
    process): (settings, events, the last /metrics body read)."""
    import threading

    from driftloop_stream import StreamService, StreamSettings

    settings, events = published
    repo, env = _repo(base_settings, tmp_path_factory.mktemp("run-a"), settings.topic_prefix)
    port = int(env["DRIFTLOOP_STREAM_METRICS_PORT"])
    service = StreamService(
        StreamSettings(
            **repo.model_dump(), stream_group="stream-a", stream_metrics_port=port,
            stream_lateness_s=300, stream_batch_max=200, stream_linger_s=0.2,
        )
    )  # fmt: skip
    failed: list[BaseException] = []

    def run() -> None:
        try:
            service.run(threading.Event(), exit_when_idle_s=4)
        except BaseException as exc:  # reported by the fixture below
            failed.append(exc)

    runner = threading.Thread(target=run)
    runner.start()
    body = ""
    try:
        deadline = time.monotonic() + 300
        while runner.is_alive() and time.monotonic() < deadline:
            body = _scrape(port) or body
            time.sleep(0.2)
        body = _scrape(port) or body
    finally:
        runner.join(timeout=60)
        service.close()
    assert not runner.is_alive() and not failed, failed
    return repo, events, body


def _progress(checkpoint: Path) -> int:
    """Transactions the service has checkpointed: 0 until its checkpoint has its tables (the
    file exists a moment before the schema is written)."""
    if not checkpoint.exists():
        return 0
    db = sqlite3.connect(checkpoint)
    try:
        (done,) = db.execute(
            "SELECT coalesce(sum(next_offset), 0) FROM offsets WHERE topic LIKE '%transactions'"
        ).fetchone()
    except sqlite3.OperationalError as exc:
        if "no such table" not in str(exc):
            raise
        return 0
    finally:
        db.close()
    return int(done)


def test_restart_after_sigkill_gives_the_same_features(published, uninterrupted, base_settings,
                                                       tmp_path):  # fmt: skip
    settings, events = published
    repo_a, _, _ = uninterrupted
    repo_b, env = _repo(base_settings, tmp_path / "run-b", settings.topic_prefix)
    env["DRIFTLOOP_STREAM_GROUP"] = "stream-b"
    checkpoint = repo_b.state_dir / "stream" / "checkpoint.sqlite"
    progress = kill_past(_start(env), lambda: _progress(checkpoint), N // 3, every=0.05)
    assert 0 < progress < N, "the kill must fall in the middle of the stream"

    again = _start(env)
    _, err = again.communicate(timeout=300)
    assert again.returncode == 0, err.decode()[-3000:]

    customers = sorted({e.customer_id for e in events})
    pd.testing.assert_frame_equal(_online(repo_a, customers), _online(repo_b, customers))
    pd.testing.assert_frame_equal(_offline(repo_a), _offline(repo_b))
    pd.testing.assert_frame_equal(_labelled(repo_a), _labelled(repo_b))
    pd.testing.assert_frame_equal(_served(repo_a), _served(repo_b))


def test_labels_join_their_transactions_into_the_history_training_reads(uninterrupted):
    repo, events, _ = uninterrupted
    labelled = _labelled(repo)
    expected = {label.transaction_id: label for label in _labels(events)}
    assert labelled["transaction_id"].is_unique
    assert set(labelled["transaction_id"]) == set(expected)  # early labels included
    by_id = {e.transaction_id: e for e in events}
    for row in labelled.itertuples():
        label, event = expected[str(row.transaction_id)], by_id[str(row.transaction_id)]
        assert row.is_fraud == label.is_fraud
        assert row.label_timestamp == pd.Timestamp(label.event_time)
        assert row.event_timestamp == pd.Timestamp(event.event_time)
        assert (row.customer_id, row.amount, row.country) == (
            event.customer_id, event.amount, event.country)  # fmt: skip
    assert list(labelled.columns) == [f.name for f in HISTORY_SCHEMA]


def test_predictions_become_the_served_features_log_training_reads(uninterrupted):
    import json

    repo, events, _ = uninterrupted
    served = _served(repo)
    expected = {p.request_id: p for p in _predictions(events)}
    assert list(served.columns) == [f.name for f in SERVED_SCHEMA]
    assert served["request_id"].is_unique and set(served["request_id"]) == set(expected)
    assert {p.role for p in expected.values()} == {"serving", "canary"}
    for row in served.itertuples():
        prediction = expected[str(row.request_id)]
        assert row.transaction_id == prediction.transaction_id
        assert row.event_timestamp == pd.Timestamp(prediction.event_time)
        # the answers' versions (serving and canary), no shadow's
        assert (row.model_name, row.model_version) == ("fraud", prediction.model_version)
        assert json.loads(str(row.features)) == prediction.features


def test_online_features_equal_offline_point_in_time(uninterrupted):
    repo, events, _ = uninterrupted
    customers = sorted({e.customer_id for e in events})[:15]
    online = _online(repo, customers)
    store = open_store(repo)
    now = pd.Timestamp(max(e.event_time for e in events)) + pd.Timedelta(seconds=1)
    entities = pd.DataFrame({"customer_id": customers, "event_timestamp": now})
    # fraud_v1 also joins merchants and reads request fields; their values do not matter here
    entities = entities.assign(merchant_id="m0", amount=1.0, country="DE", card_country="DE",
                               txn_unix=now.timestamp())  # fmt: skip
    offline = point_in_time(store, entities, store.get_feature_service("fraud_v1"))
    offline = offline.sort_values("customer_id").reset_index(drop=True)
    for feature in CUSTOMER_FEATURES:
        pd.testing.assert_series_equal(
            online[feature].astype("float64"), offline[feature].astype("float64"), check_names=False
        )
    assert online["txn_count_7d"].sum() > 0


def test_bad_and_too_late_records_go_to_the_dlq(published, uninterrupted):
    settings, _ = published
    letters: list[DeadLetter] = []
    reader = EventConsumer(settings, DeadLetter, group_id=f"dlq-check-{time.time_ns()}")
    deadline = time.monotonic() + 30
    try:
        while (
            time.monotonic() < deadline
            and len([x for x in letters if x.consumer_group.startswith("stream-a")]) < 4
        ):
            reader.poll_batch(lambda b: letters.extend(r.event for r in b), timeout_s=0.5)
    finally:
        reader.close()
    mine = [x for x in letters if x.consumer_group == "stream-a"]
    reasons = sorted(x.reason.split(":")[0] for x in mine)
    assert reasons == ["invalid record", "invalid record", "late event"]
    served = [x for x in letters if x.consumer_group == "stream-a-served"]
    assert [x.reason.split(":")[0] for x in served] == ["invalid record"], served


def test_metrics_expose_rate_push_latency_and_lag(uninterrupted):
    _, _, body = uninterrupted
    assert f"driftloop_stream_events_total {float(N)}" in body
    assert 'driftloop_stream_push_seconds_count{store="online"}' in body
    assert 'driftloop_stream_push_seconds_count{store="offline"}' in body
    assert "driftloop_stream_events_per_second" in body
    assert "driftloop_stream_consumer_lag" in body
    assert "driftloop_stream_late_events_total 1.0" in body
    assert f"driftloop_stream_served_rows_total {float(N // 2)}" in body
