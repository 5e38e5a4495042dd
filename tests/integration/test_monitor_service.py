"""The monitor as a process against the real broker: crash and restart, the outbox check,
bad values and dead letters, metrics, and the report drawn from what it kept."""

from __future__ import annotations

import base64
import json
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from driftloop.drift import AuditStore, WindowRecord
from driftloop.events import DeadLetter, Prediction
from driftloop.kafka import EventProducer
from driftloop.models import (
    Feature,
    FeatureSpec,
    Lineage,
    LoadedModel,
    ModelStore,
    RowCounts,
    TrainingWindow,
    categorical_preprocessing,
    encode_features,
)
from driftloop.profiles import reference_profiles
from tests.integration import monitor_support as ms
from tests.integration.conftest import _isolated

# about 3x what it needs: the module's runs (~15 s) and a kill and restart (~18 s)
pytestmark = pytest.mark.timeout(100)

T0 = datetime(2026, 6, 1, tzinfo=UTC)
N = 6000  # one prediction per second: ten 600 s windows, drift from the sixth on
SPEC = FeatureSpec(
    features=[
        Feature(name="x", type="float"),
        Feature(name="n", type="int"),
        Feature(name="c", type="categorical"),
    ],
    preprocessing=categorical_preprocessing({"c": ["a", "b", "c"]}),
)


def _frame(rng: np.random.Generator, size: int, shift: float = 0.0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "x": rng.normal(shift, 1.0, size),
            "n": rng.poisson(3, size),
            "c": rng.choice(["a", "b", "c"], size, p=[0.5, 0.3, 0.2]),
        }
    )


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    import xgboost

    rng = np.random.default_rng(1)
    train = _frame(rng, 4000)
    y = (train["x"] + rng.normal(0, 1, len(train)) > 1.5).astype(int)
    booster = xgboost.train(
        {"objective": "binary:logistic", "nthread": 1, "seed": 1},
        xgboost.DMatrix(encode_features(train, SPEC), label=y),
        20,
    )
    scores = booster.predict(xgboost.DMatrix(encode_features(train, SPEC)))
    store = ModelStore(str(tmp_path_factory.mktemp("models")))
    lineage = Lineage(
        git_sha="0" * 40,
        git_dirty=True,
        feature_service="test",
        feature_views_hash="test",
        training_window=TrainingWindow(start=T0 - timedelta(days=1), end=T0),
        rows=RowCounts(train=4000, validation=0, holdout=4000),
        data_hash="test",
        seed=1,
        metrics={"roc_auc": 0.8, "recall_at_threshold": 0.5, "threshold": 0.5},
    )
    version = store.put(
        "fraud",
        bytes(booster.save_raw("json")),
        filename="model.json",
        features=SPEC,
        lineage=lineage,
        references=reference_profiles(train, scores.tolist()),
    )
    return store, LoadedModel.load(version)


def _predictions(loaded: LoadedModel) -> list[Prediction]:
    rng = np.random.default_rng(2)
    frame = pd.concat([_frame(rng, N // 2), _frame(rng, N - N // 2, shift=1.0)], ignore_index=True)
    scores = loaded.predict(frame)
    return [
        Prediction(
            request_id=f"r{i}",
            transaction_id=f"t{i}",
            model_name="fraud",
            model_version=loaded.version,
            score=float(scores[i]),
            decision=bool(scores[i] >= 0.5),
            threshold=0.5,
            latency_ms=1.0,
            event_time=T0 + timedelta(seconds=i),
            features={"x": float(row["x"]), "n": int(row["n"]), "c": str(row["c"])},
        )
        for i, row in enumerate(frame.to_dict("records"))
    ]


@pytest.fixture(scope="module")
def runs(base_settings, model, tmp_path_factory):
    """The same predictions on two topic prefixes: one for an uninterrupted monitor, one
    for a monitor killed mid-stream and restarted."""
    store, loaded = model
    preds = _predictions(loaded)
    gens = [_isolated(base_settings) for _ in range(2)]
    prefixes = []
    for gen in gens:
        settings = next(gen).model_copy(update={"model_store_uri": store.uri})
        ms.publish(settings, preds)
        prefixes.append(settings)
    tmp = tmp_path_factory.mktemp("monitor")
    policy = tmp / "monitor.yaml"
    ms.policy_file(
        policy,
        window={"rows": None, "duration_s": 600, "min_rows": 300, "lateness_s": 900},
        drift={"columns": "all", "exclude": [], "min_drifted_columns": 1, "consecutive_windows": 1},
        performance={"enabled": False},
    )
    yield prefixes, tmp, policy, preds
    for gen in gens:
        next(gen, None)


def _records(state: Path) -> list[WindowRecord]:
    return [r for r in AuditStore(state / "monitor", "fraud").records() if r.kind == "data"]


@pytest.fixture(scope="module")
def uninterrupted(runs):
    (a, _), tmp, policy, _ = runs
    env = ms.monitor_env(a, tmp / "a", policy)
    ms.run_monitor(env)
    return env


def test_sigkill_and_restart_lose_no_window_and_publish_no_event_twice(runs, uninterrupted):
    (a, b), tmp, policy, _ = runs
    env = ms.monitor_env(b, tmp / "b", policy)
    progress = ms.kill_monitor_midway(
        env, "SELECT coalesce(sum(next_offset), 0) FROM offsets", N * 0.6
    )
    assert 0 < progress < N, "the kill must fall in the middle of the stream"
    ms.run_monitor(env)

    key = [(r.start, r.end, r.row_count, r.verdict, r.event_id) for r in _records(tmp / "a")]
    assert key == [
        (r.start, r.end, r.row_count, r.verdict, r.event_id) for r in _records(tmp / "b")
    ]
    assert len(key) >= 8 and sum(r[2] for r in key) >= N * 0.8
    verdicts = [r[3] for r in key]
    assert verdicts[:4] == ["no_drift"] * 4 and set(verdicts[5:]) == {"drift"}, verdicts

    published_a = [str(r["event_id"]) for r in ms.topic_records(a, "drift-events")]
    published_b = [str(r["event_id"]) for r in ms.topic_records(b, "drift-events")]
    assert published_b and Counter(published_b).most_common(1)[0][1] == 1, (
        "an event published twice"
    )
    assert sorted(published_a) == sorted(published_b) == sorted(r[4] for r in key if r[4])


def test_events_acknowledged_but_not_marked_are_found_on_the_topic_not_resent(runs, uninterrupted):
    (a, _), tmp, _, _ = runs
    before = [str(r["event_id"]) for r in ms.topic_records(a, "drift-events")]
    checkpoint = tmp / "a" / "monitor" / "fraud" / "checkpoint.sqlite"
    with sqlite3.connect(checkpoint) as db:  # a crash after the broker's ack, before the mark
        db.execute("UPDATE outbox SET published = 0, partition = NULL, offset = NULL")
    ms.run_monitor(uninterrupted)
    after = [str(r["event_id"]) for r in ms.topic_records(a, "drift-events")]
    assert before and sorted(after) == sorted(before)
    with sqlite3.connect(checkpoint) as db:
        assert db.execute("SELECT count(*) FROM outbox WHERE published = 0").fetchone() == (0,)


def test_bad_values_are_counted_and_malformed_records_dead_lettered(own_topics, model, tmp_path):
    store, loaded = model
    settings = own_topics.model_copy(update={"model_store_uri": store.uri})
    good = _predictions(loaded)[:400]
    odd: dict[int, dict[str, object]] = {
        0: {"x": float("nan")},
        1: {"x": float("inf")},
        2: {"x": "twelve"},
        3: {"c": "zzz"},
        4: {"c": None},
        5: {"n": None},
    }
    with EventProducer(settings) as producer:
        for i, p in enumerate(good):
            features = {**p.features, **odd.get(i % 40, {})}
            if i % 40 == 6:
                features.pop("x")
            body = p.model_dump(mode="json") | {"features": features}
            producer.send_raw("predictions", json.dumps(body).encode(), p.transaction_id.encode())
            # a shadow's score of the same payment: never windowed (else a second record)
            shadow = Prediction.model_validate(
                p.model_dump()
                | {"role": "shadow", "event_id": "", "model_version": "sha256-00000000000000ff"}
            )
            producer.send(shadow)
        producer.send_raw("predictions", b"{not json", b"k")
        producer.send_raw("predictions", b'{"request_id": "r-x"}', b"k")
        producer.flush()
    policy = tmp_path / "monitor.yaml"
    ms.policy_file(
        policy,
        window={"rows": 400, "min_rows": 100, "duration_s": None},
        performance={"enabled": False},
    )
    env = ms.monitor_env(
        settings, tmp_path / "state", policy, DRIFTLOOP_MONITOR_GROUP="monitor-bad"
    )
    ms.run_monitor(env)

    (record,) = _records(tmp_path / "state")
    assert record.row_count == 400 and record.verdict in {"drift", "no_drift"}
    ten = 400 // 40
    assert record.quality["x"] == {
        "missing": ten,
        "nan": ten,
        "inf": ten,
        "invalid": ten,
        "unseen": 0,
    }
    assert record.quality["c"] == {"missing": ten, "nan": 0, "inf": 0, "invalid": 0, "unseen": ten}
    assert record.quality["n"]["missing"] == ten
    letters = [DeadLetter.model_validate(r) for r in ms.topic_records(settings, "dlq")]
    mine = [x for x in letters if x.consumer_group == "monitor-bad"]
    got = sorted(base64.b64decode(x.value_b64) for x in mine)
    assert got == sorted([b"{not json", b'{"request_id": "r-x"}'])


def test_metrics_and_the_report(runs, uninterrupted, tmp_path):
    (a, _), tmp, policy, _ = runs
    env = ms.monitor_env(a, tmp / "a", policy)
    port = env["DRIFTLOOP_MONITOR_METRICS_PORT"]
    proc = ms.start_monitor(env, idle_s=30)
    body, deadline = "", time.monotonic() + 60
    try:
        while time.monotonic() < deadline and "driftloop_monitor_consumer_lag" not in body:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                    body = r.read().decode()
            except OSError:
                time.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    assert proc.returncode == 0
    for name in (
        "driftloop_monitor_rows_per_second",
        "driftloop_monitor_events_total",
        "driftloop_monitor_windows_closed_total",
        "driftloop_monitor_open_rows",
    ):
        assert name in body, name

    out = tmp_path / "report"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "driftloop",
            "drift",
            "report",
            "--model",
            "fraud",
            "--dir",
            str(tmp / "a" / "monitor"),
            "--out",
            str(out),
        ],
        cwd=ms.ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    png, page = out / "drift-fraud.png", out / "drift-fraud.html"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    html = page.read_text()
    events = {r.event_id for r in _records(tmp / "a") if r.event_id}
    assert events and all(e in html for e in events)
    assert "x" in html and "DRIFT" in html and "data:image/png;base64," in html
