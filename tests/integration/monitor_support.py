"""A realistic harness for the monitor: simulator history → features (Feast point-in-time)
→ a small stored model → real Prediction and Label records on Kafka → the real monitor
process → drift events. Shared by the monitor's tests and bench/monitor.py."""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from driftloop.drift import MonitorPolicy, load_policy
from driftloop.events import DriftEvent, Event, Label, Prediction
from driftloop.features import (
    SCHEMAS,
    customer_aggregates,
    merchant_stats,
    open_store,
    point_in_time,
    training_entities,
    write_batch,
)
from driftloop.features._history import empty_sources
from driftloop.features._offline import list_batches
from driftloop.features._store import feast_environment, repo_dir
from driftloop.kafka import EventProducer, connect_consumer
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
from driftloop.settings import Settings
from tests.polling import kill_past

ROOT = Path(__file__).resolve().parents[2]
END = datetime(2026, 6, 1, tzinfo=UTC)
CATEGORICAL = ["merchant_category"]
INTEGER = [
    "txn_count_1h",
    "txn_count_24h",
    "txn_count_7d",
    "distinct_merchants_24h",
    "distinct_devices_7d",
    "merchant_txn_count_30d",
    "is_foreign",
    "hour_of_day",
]
FLOAT = [
    "amount_mean_24h",
    "amount_max_24h",
    "amount_mean_7d",
    "amount_max_7d",
    "foreign_share_7d",
    "online_share_24h",
    "merchant_fraud_rate_30d",
    "amount_to_mean_7d",
    "seconds_since_last_txn",
]
FEATURES = [*INTEGER, *FLOAT, *CATEGORICAL]


@dataclass(frozen=True)
class World:
    """Sizes of a simulated history; ``days`` end at :data:`END`."""

    days: int = 13
    tx_per_day: float = 2500
    customers: int = 500
    merchants: int = 100
    fraud_rate: float = 0.02
    seed: int = 7

    @property
    def start(self) -> pd.Timestamp:
        return pd.Timestamp(END - timedelta(days=self.days))

    def day(self, n: float) -> pd.Timestamp:
        return self.start + pd.Timedelta(days=n)


def history(world: World, scenario: str | None = None, onset_day: float = 0.0) -> pd.DataFrame:
    from driftloop_simulator import (
        BackfillConfig,
        GeneratorConfig,
        WorldConfig,
        backfill,
        choose_scenario,
    )

    config = BackfillConfig(
        world=WorldConfig(
            seed=world.seed, n_customers=world.customers, n_merchants=world.merchants
        ),
        generator=GeneratorConfig(tx_per_day=world.tx_per_day, fraud_rate=world.fraud_rate),
        days=world.days,
        end=END,
    )
    choice = choose_scenario(scenario, onset_day * 86_400, 1.0, None) if scenario else None
    return backfill(config, choice).transactions


def apply_in_process(settings: Settings) -> str:
    """What ``driftloop.features.apply_repo`` does, with Feast's apply run in this process
    rather than by the ``feast`` CLI (a process importing Feast afresh: about 8 s more): the
    same empty batch sources, the repository's definitions read by path with the same
    environment, applied to the same registry. For tests whose subject is not the CLI."""
    from feast import Entity, FeatureService, FeatureView, OnDemandFeatureView
    from feast.data_source import DataSource
    from feast.feast_object import FeastObject

    for name, frame in empty_sources().items():
        directory = f"{settings.feature_data}/{name}"
        if not list_batches(directory):
            write_batch(frame, directory, "empty", SCHEMAS[name])
    spec = importlib.util.spec_from_file_location(
        "_driftloop_feast_definitions", repo_dir(settings) / "definitions.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    saved = {k: os.environ.get(k) for k in feast_environment(settings)}
    os.environ.update(feast_environment(settings))
    try:
        spec.loader.exec_module(module)
    finally:
        for variable, value in saved.items():
            if value is None:
                os.environ.pop(variable, None)
            else:
                os.environ[variable] = value
    kinds = (Entity, DataSource, FeatureView, OnDemandFeatureView, FeatureService)
    objects: list[FeastObject] = [v for v in vars(module).values() if isinstance(v, kinds)]
    open_store(settings).apply(objects)
    return f"applied {len(objects)} objects"


def featurize(
    base: Settings, root: Path, parts: dict[str, tuple[pd.DataFrame, pd.Timestamp]]
) -> dict[str, pd.DataFrame]:
    """Model features of each history's rows from the given time on, as serving would have
    read them. Histories share one Feast repository under ids prefixed by their key."""
    settings = base.model_copy(
        update={
            "state_dir": root / "state",
            "feature_env": "local",
            "feature_data_uri": str(root / "features"),
        }
    )
    frames, wanted = [], []
    keys = {f"h{i}": key for i, key in enumerate(parts)}  # ids carry no dash of the key's
    for tag, (frame, since) in zip(keys, parts.values(), strict=True):
        f = frame.copy()
        for column in ("transaction_id", "customer_id", "merchant_id"):
            f[column] = tag + "-" + f[column].astype(str)
        frames.append(f)
        wanted.append(f[f["event_timestamp"] >= since])
    everything = pd.concat(frames, ignore_index=True)
    write_batch(
        customer_aggregates(everything, END),
        f"{settings.feature_data}/customer_aggregates",
        "backfill",
        SCHEMAS["customer_aggregates"],
    )
    write_batch(
        merchant_stats(everything, END),
        f"{settings.feature_data}/merchant_stats",
        "backfill",
        SCHEMAS["merchant_stats"],
    )
    apply_in_process(settings)
    store = open_store(settings)
    service = store.get_feature_service("fraud_v1")
    rows = pd.concat(wanted, ignore_index=True)
    served = {f.name for p in service.feature_view_projections for f in p.features}
    entities = training_entities(rows.drop(columns=sorted(served & set(rows.columns))))
    joined = point_in_time(store, entities, service)
    joined["event_timestamp"] = rows["event_timestamp"].to_numpy()
    joined["key"] = joined["transaction_id"].str.split("-", n=1).str[0]
    return {
        keys[str(k)]: g.drop(columns="key").reset_index(drop=True) for k, g in joined.groupby("key")
    }


def _threshold(y: np.ndarray, scores: np.ndarray, precision: float = 0.8) -> float:
    from sklearn.metrics import precision_recall_curve  # type: ignore[import-untyped]

    p, _, thresholds = precision_recall_curve(y, scores)
    reaching = np.flatnonzero(p[:-1] >= precision)
    return float(thresholds[reaching[0]]) if reaching.size else 0.5


def train_and_store(frame: pd.DataFrame, store: ModelStore, name: str = "fraud") -> LoadedModel:
    """A small XGBoost model on the frame's first 70 %, its holdout on the rest, stored
    with lineage, metrics and both reference profiles."""
    import xgboost
    from sklearn.metrics import average_precision_score, roc_auc_score

    types = {
        **dict.fromkeys(INTEGER, "int"),
        **dict.fromkeys(FLOAT, "float"),
        **dict.fromkeys(CATEGORICAL, "categorical"),
    }
    cut = int(len(frame) * 0.7)
    train, holdout = frame.iloc[:cut], frame.iloc[cut:]
    vocab = {c: sorted({str(v) for v in train[c].dropna()}) for c in CATEGORICAL}
    spec = FeatureSpec(
        features=[Feature(name=n, type=types[n]) for n in FEATURES],
        preprocessing=categorical_preprocessing(vocab),
    )
    params = {"objective": "binary:logistic", "max_depth": 4, "eta": 0.2, "nthread": 1, "seed": 7}
    dtrain = xgboost.DMatrix(encode_features(train, spec), label=train["is_fraud"].astype(int))
    booster = xgboost.train(params, dtrain, num_boost_round=60)
    model = bytes(booster.save_raw("json"))
    y = holdout["is_fraud"].to_numpy(bool)
    scores = booster.predict(xgboost.DMatrix(encode_features(holdout, spec)))
    threshold = _threshold(y, scores)
    metrics = {
        "roc_auc": float(roc_auc_score(y, scores)),
        "pr_auc": float(average_precision_score(y, scores)),
        "threshold": threshold,
        "recall_at_threshold": float(((scores >= threshold) & y).sum() / max(1, y.sum())),
        # as driftloop.training records them: the monitor weighs the holdout's own error
        "positives": float(y.sum()),
        "rows": float(len(y)),
    }
    first, last = frame["event_timestamp"].min(), frame["event_timestamp"].max()
    lineage = Lineage(
        git_sha="0" * 40,
        git_dirty=True,
        feature_service="fraud_v1",
        feature_views_hash="test",
        training_window=TrainingWindow(start=first.to_pydatetime(), end=last.to_pydatetime()),
        rows=RowCounts(train=len(train), validation=0, holdout=len(holdout)),
        data_hash="test",
        params={"eta": 0.2, "max_depth": 4},
        metrics=metrics,
        seed=7,
    )
    version = store.put(
        name,
        model,
        filename="model.json",
        features=spec,
        lineage=lineage,
        references=reference_profiles(train[FEATURES], scores.tolist()),
    )
    return LoadedModel.load(version)


def _value(v: object) -> object:
    if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA:
        return None
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    return v


def predictions(model: LoadedModel, frame: pd.DataFrame, name: str = "fraud") -> list[Prediction]:
    scores = model.predict(frame[FEATURES])
    threshold = model.threshold or 0.5
    records = frame[FEATURES].astype(object).to_dict("records")
    out = []
    for i, (tid, t) in enumerate(
        zip(frame["transaction_id"], frame["event_timestamp"], strict=True)
    ):
        score = float(min(1.0, max(0.0, scores[i])))
        out.append(
            Prediction(
                request_id=f"r-{tid}",
                transaction_id=tid,
                model_name=name,
                model_version=model.version,
                score=score,
                decision=score >= threshold,
                threshold=threshold,
                latency_ms=1.0,
                event_time=t.to_pydatetime(),
                features={str(k): _value(v) for k, v in records[i].items()},
            )
        )
    return out


def labels(frame: pd.DataFrame) -> list[Label]:
    return [
        Label(transaction_id=tid, is_fraud=bool(y), event_time=t.to_pydatetime())
        for tid, y, t in zip(
            frame["transaction_id"], frame["is_fraud"], frame["label_timestamp"], strict=True
        )
    ]


def publish(settings: Settings, events: Iterable[Prediction | Label]) -> int:
    """Send in event-time order (labels interleave with predictions as they would arrive)."""
    return send(settings, sorted(events, key=lambda e: e.event_time))


def send(settings: Settings, events: Iterable[Event]) -> int:
    """Send ``events`` in the order given, each to its contract's topic, and flush."""
    n = 0
    with EventProducer(settings) as producer:
        for event in events:
            producer.send(event)
            n += 1
        producer.flush()
    return n


def policy_file(path: Path, **sections: dict[str, object]) -> MonitorPolicy:
    """The shipped fraud policy with some sections' fields replaced, written to ``path``."""
    shipped = load_policy(ROOT / "deploy" / "apps" / "fraud" / "monitor.yaml").model_dump()
    for section, fields in sections.items():
        shipped[section].update(fields)
    policy = MonitorPolicy.model_validate(shipped)
    path.write_text(yaml.safe_dump(policy.model_dump(mode="json")))
    return policy


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def monitor_env(settings: Settings, state: Path, policy: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "DRIFTLOOP_TOPIC_PREFIX": settings.topic_prefix,
        "DRIFTLOOP_STATE_DIR": str(state),
        "DRIFTLOOP_MODEL_STORE_URI": settings.model_store,
        "DRIFTLOOP_MONITOR_POLICY": str(policy),
        "DRIFTLOOP_MONITOR_BATCH_MAX": "1000",
        "DRIFTLOOP_MONITOR_LINGER_S": "0.2",
        "DRIFTLOOP_MONITOR_METRICS_PORT": str(free_port()),
        **extra,
    }


def start_monitor(
    env: dict[str, str], idle_s: float = 4, log: Path | None = None
) -> subprocess.Popen[bytes]:
    """The monitor as a process that exits once idle for ``idle_s``; its stderr to a pipe,
    or appended to ``log`` (a file: a long run never blocks on a full pipe)."""
    command = [sys.executable, "-m", "driftloop_monitor.cli", "run", "--exit-when-idle",
               str(idle_s)]  # fmt: skip
    if log is None:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)  # fmt: skip
    with log.open("ab") as out:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                stderr=out)  # fmt: skip


def kill_monitor_midway(env: dict[str, str], query: str, past: float) -> int:
    """Start the monitor, SIGKILL it once ``query`` (one number, on its checkpoint) is
    above ``past``, and return that number; asserts the monitor was still running."""
    checkpoint = Path(env["DRIFTLOOP_STATE_DIR"]) / "monitor" / "fraud" / "checkpoint.sqlite"

    def progress() -> float:
        if not checkpoint.exists():
            return 0
        with sqlite3.connect(checkpoint) as db:
            try:
                (value,) = db.execute(query).fetchone()
            except sqlite3.OperationalError:  # tables not created yet
                return 0
        return float(value)

    return int(kill_past(start_monitor(env), progress, past))


def run_monitor(env: dict[str, str], timeout_s: float = 300) -> float:
    started = time.monotonic()
    proc = start_monitor(env)
    _, err = proc.communicate(timeout=timeout_s)
    assert proc.returncode == 0, err.decode()[-4000:]
    return time.monotonic() - started


def topic_records(settings: Settings, logical: str) -> list[dict[str, object]]:
    """Every record on a topic, as parsed JSON (duplicates included)."""
    from kafka import TopicPartition

    consumer = connect_consumer(settings, group_id=None)
    try:
        name = settings.topic(logical)
        tps = [TopicPartition(name, p) for p in sorted(consumer.partitions_for_topic(name) or ())]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        out: list[dict[str, object]] = []
        deadline = time.monotonic() + 30
        while any(consumer.position(tp) < ends[tp] for tp in tps) and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                out.extend(json.loads(r.value) for r in records)
        return out
    finally:
        consumer.close(autocommit=False)


def drift_events(settings: Settings) -> list[DriftEvent]:
    return [DriftEvent.model_validate(r) for r in topic_records(settings, "drift-events")]


def delay_after_onset(preds: list[Prediction], onset: pd.Timestamp, event: DriftEvent) -> int:
    """Predictions made after the onset up to the end of the event's window."""
    end = event.window.end
    return sum(1 for p in preds if onset <= p.event_time <= end)
