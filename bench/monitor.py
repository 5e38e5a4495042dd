"""The monitor: whylogs profiling against DataFrame.describe() on the same frame; the
monitor's end-to-end rate against a bare kafka-python poll loop over the same topic; and
detection on the simulator with the shipped policy (delay per scenario, false events on a
run of at least 50 quiet windows). Ratios are measured in the same run."""

from __future__ import annotations

import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import pandas as pd
from driftloop_monitor import MonitorService, MonitorSettings
from kafka import KafkaConsumer

from bench._common import record
from driftloop.drift import AuditStore
from driftloop.kafka import connect_admin, ensure_topics
from driftloop.models import ModelStore
from driftloop.profiles import profile_frame
from driftloop.settings import TOPICS, Settings
from tests.integration import monitor_support as ms

SCENARIOS = (
    "covariate-shift",
    "covariate-shift-country",
    "new-category",
    "concept-drift",
    "label-shift",
)
WORLD = ms.World(days=26, tx_per_day=6000, customers=1200, merchants=200)
QUIET_FROM, ONSET = 9, 22  # monitoring starts on day 9; scenarios start on day 22


def _topics(prefix: str) -> Settings:
    settings = Settings(topic_prefix=f"{prefix}-{uuid.uuid4().hex[:6]}.")
    ensure_topics(settings)
    return settings


def _drop(settings: Settings) -> None:
    admin = connect_admin(settings)
    admin.delete_topics([settings.topic(t) for t in TOPICS])
    admin.close()


def profiling(frame: pd.DataFrame) -> dict[str, float]:
    def best(fn) -> float:
        fn()
        return min(_time(fn) for _ in range(3))

    whylogs_s = best(lambda: profile_frame(frame))
    describe_s = best(lambda: frame.describe(include="all"))
    rows = len(frame)
    return {
        "profile_rows": rows,
        "profile_columns": frame.shape[1],
        "whylogs_rows_per_s": rows / whylogs_s,
        "describe_rows_per_s": rows / describe_s,
        "ratio_whylogs_over_describe": describe_s / whylogs_s,
    }


def _time(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def end_to_end(store: ModelStore, model, frame: pd.DataFrame, root: Path) -> dict[str, float]:
    settings = _topics("bench-mon").model_copy(update={"model_store_uri": store.uri})
    preds = ms.predictions(model, frame)
    n = len(preds)
    try:
        ms.publish(settings, preds)
        consumer = KafkaConsumer(
            settings.topic("predictions"),
            bootstrap_servers=settings.kafka_bootstrap,
            group_id=f"bench-bare-{uuid.uuid4().hex[:6]}",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            max_poll_records=2000,
        )
        seen, started = 0, time.perf_counter()
        while seen < n:
            seen += sum(len(r) for r in consumer.poll(timeout_ms=500).values())
        bare = time.perf_counter() - started
        consumer.close()
        ms.policy_file(
            root / "e2e.yaml", window={"duration_s": None}, performance={"enabled": False}
        )
        fields = {
            **settings.model_dump(),
            "monitor_policy": root / "e2e.yaml",
            "state_dir": root / "e2e",
        }
        service = MonitorService(MonitorSettings(**fields))
        started = time.perf_counter()
        while service.metrics.predictions._value.get() < n:
            service.predictions.poll_batch(service.handle_predictions, timeout_s=0.5)
        monitor = time.perf_counter() - started
        windows = len(service.audit.records())
        service.close()
    finally:
        _drop(settings)
    return {
        "e2e_predictions": n,
        "e2e_windows": windows,
        "bare_poll_rows_per_s": n / bare,
        "monitor_rows_per_s": n / monitor,
        "ratio_monitor_over_bare": bare / monitor,
    }


def quality(
    store: ModelStore, model, quiet: pd.DataFrame, frames: dict[str, pd.DataFrame], root: Path
) -> dict[str, object]:
    out: dict[str, object] = {}
    onset = WORLD.day(ONSET)
    lead = quiet[quiet["event_timestamp"] >= onset - pd.Timedelta(days=2)]
    lead = lead[lead["event_timestamp"] < onset]
    runs = {
        "no-drift": quiet,
        **{name: pd.concat([lead, frames[name]], ignore_index=True) for name in SCENARIOS},
    }
    ms.policy_file(root / "shipped.yaml", window={"duration_s": None})
    for name, frame in runs.items():
        settings = _topics("bench-q").model_copy(update={"model_store_uri": store.uri})
        try:
            preds = ms.predictions(model, frame)
            ms.publish(settings, [*preds, *ms.labels(frame)])
            took = ms.run_monitor(
                ms.monitor_env(
                    settings, root / name, root / "shipped.yaml", DRIFTLOOP_MONITOR_BATCH_MAX="2000"
                ),
                1800,
            )
            events = sorted(ms.drift_events(settings), key=lambda e: e.window.end)
        finally:
            _drop(settings)
        kinds = Counter(e.kind for e in events)
        windows = Counter(r.kind for r in AuditStore(root / name / "monitor", "fraud").records())
        before = [e for e in events if e.window.end < onset]
        after = [e for e in events if e.window.end >= onset]
        out[f"{name}.predictions"] = len(preds)
        out[f"{name}.data_windows"] = windows["data"]
        out[f"{name}.events"] = dict(kinds)
        out[f"{name}.events_before_onset"] = len(before)
        out[f"{name}.monitor_s"] = took
        for kind in ("data_drift", "performance_degraded"):
            first = next((e for e in after if e.kind == kind), None)
            if name != "no-drift" and first is not None:
                out[f"{name}.delay_{kind}"] = ms.delay_after_onset(preds, onset, first)
    return out


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="bench-monitor-"))
    started = time.perf_counter()
    parts = {"base": (ms.history(WORLD), WORLD.day(7))}
    for name in SCENARIOS:
        parts[name] = (ms.history(WORLD, name, ONSET), WORLD.day(ONSET))
    frames = ms.featurize(Settings(), root / "feast", parts)
    base = frames.pop("base")
    store = ModelStore(str(root / "models"))
    model = ms.train_and_store(base[base["event_timestamp"] < WORLD.day(QUIET_FROM)], store)
    quiet = base[base["event_timestamp"] >= WORLD.day(QUIET_FROM)].reset_index(drop=True)
    setup_s = time.perf_counter() - started
    numeric = quiet[ms.FEATURES].copy()
    result: dict[str, object] = {"setup_s": setup_s}
    result.update(profiling(pd.concat([numeric] * 2, ignore_index=True)))
    result.update(end_to_end(store, model, quiet.iloc[:40_000], root))
    record("monitor", result)  # the rates, before the longer detection runs
    result.update(quality(store, model, quiet, frames, root))
    result["model_holdout"] = {k: round(v, 4) for k, v in model.metadata.metrics.items()}
    result["numpy"] = np.__version__
    record("monitor", result)


if __name__ == "__main__":
    main()
