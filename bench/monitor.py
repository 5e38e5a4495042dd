"""The monitor: whylogs profiling against DataFrame.describe() on the same frame; the
monitor's end-to-end rate against a bare kafka-python poll loop over the same topic; and
detection on the simulator with the shipped policy (delay per scenario, false events on a
run of at least 50 quiet windows). Ratios are measured in the same run.

Iterating on the policy (every variable optional; by default a fresh temp directory, the
shipped policy, everything measured and recorded in ``bench/results/latest.json``):

- ``DRIFTLOOP_BENCH_MONITOR_DIR=<dir>``: work there and keep it. The ~9 min setup (features,
  model) is cached there and reused by the next run; each quality run keeps its audit.
- ``DRIFTLOOP_BENCH_MONITOR_POLICY=<monitor.yaml>``: judge with this policy, not the shipped one.
- ``DRIFTLOOP_BENCH_MONITOR_ONLY=rates|quality`` (comma-separated): run only these parts
  (results are then written to ``<dir>/result.json``, not recorded).
- ``python bench/monitor.py rejudge <monitor.yaml> [--live]`` (needs the kept directory):
  judge the kept runs again offline with another policy, in about three minutes:
  performance by replaying predictions and labels through the monitor's own label join and
  judge (no Kafka; in the order the quality runs read their backlog, or with ``--live`` in
  event-time order, labels days after their predictions as they would arrive live), data
  drift from the kept window profiles (same window size only).

The quality runs read a published backlog: the monitor takes batches of predictions and
labels in turn, so a label mostly finds its prediction not yet read and joins with it in
prediction order. Live, a label joins days after its prediction (chargebacks after a
median two days, legitimate payments after three), so performance delays in predictions
after the onset are longer live than measured here by about that label delay."""

from __future__ import annotations

import json
import os
import shutil
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
from driftloop.drift import AuditStore, MonitorPolicy, WindowRecord, load_policy
from driftloop.events import DriftEvent, Window
from driftloop.kafka import connect_admin, ensure_topics
from driftloop.models import LoadedModel, ModelStore
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
WORKDIR_ENV = "DRIFTLOOP_BENCH_MONITOR_DIR"
POLICY_ENV = "DRIFTLOOP_BENCH_MONITOR_POLICY"
ONLY_ENV = "DRIFTLOOP_BENCH_MONITOR_ONLY"
PARTS = ("rates", "quality")
BACKLOG_BATCH = 2000  # DRIFTLOOP_MONITOR_BATCH_MAX of the quality runs


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
        shutil.rmtree(root / "e2e", ignore_errors=True)  # a kept directory's last run
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


def _runs(quiet: pd.DataFrame, frames: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """The no-drift run, and each scenario after two quiet days."""
    onset = WORLD.day(ONSET)
    lead = quiet[quiet["event_timestamp"] >= onset - pd.Timedelta(days=2)]
    lead = lead[lead["event_timestamp"] < onset]
    return {
        "no-drift": quiet,
        **{name: pd.concat([lead, frames[name]], ignore_index=True) for name in SCENARIOS},
    }


def _bench_policy(path: Path, source: Path) -> MonitorPolicy:
    """``source`` with event-time bounds dropped: the backfill packs a day of traffic
    into fewer rows than the live stream, so windows close by rows only."""
    raw = load_policy(source).model_dump(mode="json")
    raw["window"]["duration_s"] = None
    policy = MonitorPolicy.model_validate(raw)
    path.write_text(json.dumps(raw))
    return policy


def quality(
    store: ModelStore,
    model: LoadedModel,
    quiet: pd.DataFrame,
    frames: dict[str, pd.DataFrame],
    root: Path,
    source: Path,
) -> dict[str, object]:
    out: dict[str, object] = {}
    onset = WORLD.day(ONSET)
    _bench_policy(root / "shipped.yaml", source)
    for name, frame in _runs(quiet, frames).items():
        settings = _topics("bench-q").model_copy(update={"model_store_uri": store.uri})
        if (root / name).exists():
            shutil.rmtree(root / name)
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


def _setup(root: Path) -> tuple[ModelStore, LoadedModel, pd.DataFrame, dict[str, pd.DataFrame]]:
    """Features of the quiet history and of each scenario, and the model trained on the
    first quiet days; cached under ``root`` (reused when ``root`` is kept)."""
    cache, store = root / "frames", ModelStore(str(root / "models"))
    if (cache / "done").exists():
        stored = store.latest("fraud")
        assert stored is not None, f"{root}/models holds no fraud model"
        frames = {p.stem: pd.read_parquet(p) for p in cache.glob("*.parquet")}
        frames.pop("train")
        return store, LoadedModel.load(stored), frames.pop("quiet"), frames
    parts = {"base": (ms.history(WORLD), WORLD.day(7))}
    for name in SCENARIOS:
        parts[name] = (ms.history(WORLD, name, ONSET), WORLD.day(ONSET))
    frames = ms.featurize(Settings(), root / "feast", parts)
    base = frames.pop("base")
    train = base[base["event_timestamp"] < WORLD.day(QUIET_FROM)].reset_index(drop=True)
    model = ms.train_and_store(train, store)
    quiet = base[base["event_timestamp"] >= WORLD.day(QUIET_FROM)].reset_index(drop=True)
    cache.mkdir(parents=True, exist_ok=True)
    for name, frame in {"train": train, "quiet": quiet, **frames}.items():
        frame.to_parquet(cache / f"{name}.parquet", index=False)
    (cache / "done").touch()
    return store, model, quiet, frames


def _workdir() -> Path:
    kept = os.environ.get(WORKDIR_ENV)
    if kept:
        Path(kept).mkdir(parents=True, exist_ok=True)
        return Path(kept).resolve()
    return Path(tempfile.mkdtemp(prefix="bench-monitor-"))


def main() -> None:
    root = _workdir()
    source = Path(
        os.environ.get(POLICY_ENV) or ms.ROOT / "deploy" / "apps" / "fraud" / "monitor.yaml"
    )
    only = [p for p in os.environ.get(ONLY_ENV, ",".join(PARTS)).split(",") if p]
    unknown = set(only) - set(PARTS)
    if unknown:
        raise SystemExit(f"{ONLY_ENV}: unknown parts {sorted(unknown)}; known: {PARTS}")
    complete = set(only) == set(PARTS) and not os.environ.get(POLICY_ENV)

    def keep(result: dict[str, object]) -> None:
        if complete:
            record("monitor", result)
        else:
            (root / "result.json").write_text(json.dumps(result, indent=2, default=str))
            print(json.dumps(result, indent=1, default=str))

    started = time.perf_counter()
    store, model, quiet, frames = _setup(root)
    result: dict[str, object] = {"setup_s": time.perf_counter() - started, "policy": str(source)}
    if "rates" in only:
        numeric = quiet[ms.FEATURES].copy()
        result.update(profiling(pd.concat([numeric] * 2, ignore_index=True)))
        result.update(end_to_end(store, model, quiet.iloc[:40_000], root))
        keep(result)  # the rates, before the longer detection runs
    if "quality" in only:
        result.update(quality(store, model, quiet, frames, root, source))
    result["model_holdout"] = {k: round(v, 4) for k, v in model.metadata.metrics.items()}
    result["numpy"] = np.__version__
    result["total_s"] = time.perf_counter() - started
    keep(result)


# --- offline: the kept runs judged again with another policy


def _replay_performance(
    policy: MonitorPolicy,
    store: ModelStore,
    model: LoadedModel,
    frame: pd.DataFrame,
    tmp: Path,
    backlog: bool,
) -> list[WindowRecord]:
    """Predictions and labels of ``frame`` through the monitor's own label join and
    performance judge, in event-time order or as read from a backlog; its evaluations."""
    from driftloop_monitor._checkpoint import Checkpoint
    from driftloop_monitor._join import LabelJoin
    from driftloop_monitor._judge import judge_performance
    from driftloop_monitor._references import References

    scores = np.clip(model.predict(frame[ms.FEATURES]), 0.0, 1.0)
    threshold = model.threshold or 0.5
    ids = frame["transaction_id"].to_numpy()
    pred_t = frame["event_timestamp"].map(pd.Timestamp.timestamp).to_numpy()
    label_t = frame["label_timestamp"].map(pd.Timestamp.timestamp).to_numpy()
    y = frame["is_fraud"].to_numpy(bool)
    # (time, kind, row): kind 0 a prediction, 1 a label
    preds = sorted((t, 0, i) for i, t in enumerate(pred_t))
    labels = sorted((t, 1, i) for i, t in enumerate(label_t))
    if backlog:
        # as the benchmark's monitor reads the published backlog: a batch of predictions,
        # then one of labels, both topics from the start
        order = []
        for start in range(0, max(len(preds), len(labels)), BACKLOG_BATCH):
            order += preds[start : start + BACKLOG_BATCH] + labels[start : start + BACKLOG_BATCH]
    else:  # as they would arrive live: labels days after their predictions
        order = sorted(preds + labels)
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "replay.sqlite").unlink(missing_ok=True)
    checkpoint = Checkpoint(tmp / "replay.sqlite")
    join = LabelJoin(checkpoint, policy.performance)
    ref = References(store, policy.model).get(model.version)
    version = model.version
    out: list[WindowRecord] = []
    for start in range(0, len(order), 5000):
        with checkpoint.transaction():
            for _, kind, i in order[start : start + 5000]:
                if kind == 0:
                    s = float(scores[i])
                    joined = join.prediction(str(ids[i]), version, pred_t[i], s, s >= threshold)
                else:
                    joined = join.label(str(ids[i]), bool(y[i]), label_t[i])
                rows = join.due(version) if joined is not None else None
                if rows is None:
                    continue
                streak, since = checkpoint.streak(version, "performance")
                judged, streak = judge_performance(policy, version, rows, ref, streak)
                checkpoint.set_streak(version, "performance", streak, since)
                out.append(judged.record)
    checkpoint.db.close()
    return out


def _rejudge_data(
    policy: MonitorPolicy, store: ModelStore, model: LoadedModel, audit: Path
) -> tuple[list[DriftEvent], int]:
    """The kept windows' profiles judged with ``policy.drift``."""
    from driftloop_monitor._judge import _plan
    from driftloop_monitor._references import References

    from driftloop.drift import compare

    ref = References(store, policy.model).get(model.version)
    assert ref is not None
    kept = AuditStore(audit, policy.model)
    events, streak, windows = [], 0, 0
    for window in kept.records("data"):
        if window.verdict not in ("drift", "no_drift"):
            continue
        windows += 1
        tests = compare(_plan(policy, ref, kept.read_profile(window), {}), policy.drift)
        drifted = sum(t.drifted for t in tests)
        streak = streak + 1 if drifted >= policy.drift.min_drifted_columns else 0
        if streak >= policy.drift.consecutive_windows:
            w = Window(start=window.start, end=window.end, row_count=window.row_count)
            metrics = {"drifted_columns": float(drifted)}
            events.append(
                DriftEvent(
                    kind="data_drift",
                    model_name=policy.model,
                    model_version=window.version,
                    window=w,
                    reference_profile=ref.uri,
                    metrics=metrics,
                )
            )
    return events, windows


def _event(record: WindowRecord) -> DriftEvent:
    """What the monitor published for a performance record with an event (enough of it
    for the delay)."""
    w = Window(start=record.start, end=record.end, row_count=record.row_count)
    return DriftEvent(
        kind="performance_degraded",
        model_name=record.model,
        model_version=record.version,
        window=w,
        reference_profile=record.reference_profile or "-",
        metrics=record.metrics,
    )


def rejudge(source: Path, backlog: bool) -> None:
    kept = os.environ.get(WORKDIR_ENV)
    if not kept or not (Path(kept) / "frames" / "done").exists():
        raise SystemExit(f"rejudge needs {WORKDIR_ENV} set to a kept, complete work directory")
    root = Path(kept)
    policy = _bench_policy(root / "rejudge.yaml", source)
    store, model, quiet, frames = _setup(root)
    onset = WORLD.day(ONSET)
    out: dict[str, object] = {"policy": str(source), "labels": "backlog" if backlog else "live"}
    for name, frame in _runs(quiet, frames).items():
        started = time.perf_counter()
        times = frame["event_timestamp"].sort_values().to_numpy()
        perf = _replay_performance(policy, store, model, frame, root / "rejudge", backlog)
        data, windows = _rejudge_data(policy, store, model, root / name / "monitor")
        events = sorted(
            [*data, *(_event(r) for r in perf if r.event_id)], key=lambda e: e.window.end
        )
        out[f"{name}.data_windows"] = windows
        out[f"{name}.events"] = dict(Counter(e.kind for e in events))
        out[f"{name}.events_before_onset"] = dict(
            Counter(e.kind for e in events if e.window.end < onset)
        )
        for kind in ("data_drift", "performance_degraded"):
            first = next((e for e in events if e.kind == kind and e.window.end >= onset), None)
            if name != "no-drift" and first is not None:
                end = pd.Timestamp(first.window.end)
                out[f"{name}.delay_{kind}"] = int(((times >= onset) & (times <= end)).sum())
        out[f"{name}.rejudge_s"] = round(time.perf_counter() - started, 1)
        print(name, {k.split(".", 1)[1]: v for k, v in out.items() if k.startswith(name + ".")})
    (root / "rejudge.json").write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    if sys.argv[1:2] == ["rejudge"]:
        rejudge(Path(sys.argv[2]), backlog="--live" not in sys.argv[3:])
    else:
        main()
