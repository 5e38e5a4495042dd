"""The whole loop, watched: v1 serves, traffic flows through the endpoint and Kafka, the
drift starts, and the demo waits until the system has put v2 in its place by itself —
drift event → retraining run → gate → promotion commit → sync → v2 serving."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from driftloop.apikey import client_headers, key_source
from driftloop.events import DriftEvent, Label, Prediction
from driftloop.gitops import Git, read_state
from driftloop.kafka import EventConsumer, Received, connect_admin, ensure_topics
from driftloop.runs import RunStore
from driftloop.runs._state import RunRecord
from driftloop.settings import Settings
from driftloop_demo._alerts import Alerts, AlertSpan
from driftloop_demo._config import DemoConfig
from driftloop_demo._evidence import (
    Comparison,
    Healing,
    compare_models,
    end_offsets,
    healing,
    live_figures,
    monitor_position,
    read_topic,
    scored_frame,
    skew_summary,
    stream_position,
)
from driftloop_demo._faults import FaultPlan, FaultRecord, kill_replica, wait_for_replacement
from driftloop_demo._services import Services
from driftloop_demo._shadow import ShadowTrail, commit_shadow_policy
from driftloop_demo._stage import (
    demo_settings,
    deployment_repository,
    first_model,
    labelled_history,
    write_environment,
)

Echo = Callable[[str], None]


class LoopNotClosed(RuntimeError):
    """The loop did not close in time; the message says which step it stopped at."""


@dataclass
class Counts:
    """What each part says it did, from its own durable state (topics' end offsets,
    checkpoints, files), not from counters a restart would reset."""

    sent: int = 0
    predicted_ok: int = 0
    predicted_failed: int = 0
    predict_failures: dict[str, int] = field(default_factory=dict)  # reason -> payments
    predict_retried: int = 0
    transactions: int = 0  # on the transactions topic
    stream_consumed: int = 0  # in the stream service's checkpoint
    feature_rows: int = 0  # in the stream service's offline files
    records_logged: int = 0  # on the predictions topic (a record: a batch of predictions)
    predictions_logged: int = 0  # in those records
    predictions_distinct: int = 0  # distinct transaction ids among them
    labels_sent: int = 0
    monitor_consumed: int = 0  # records of the predictions topic in the monitor's checkpoint
    rows_windowed: int = 0  # closed + open windows
    rows_in_closed_windows: int = 0


@dataclass
class DemoResult:
    root: Path
    settings: Settings
    config: DemoConfig
    v1: str = ""
    virtual_onset: datetime | None = None  # the drift's start in the traffic's event time
    v2: str | None = None
    marks: dict[str, datetime] = field(default_factory=dict)
    events: list[DriftEvent] = field(default_factory=list)
    runs: list[RunRecord] = field(default_factory=list)
    promotion_commit: str | None = None
    promotion_message: str = ""
    counts: Counts = field(default_factory=Counts)
    comparison: Comparison | None = None
    healing: Healing | None = None
    v1_metrics: dict[str, float] = field(default_factory=dict)  # v1's holdout, pre-drift
    scores: Any = None  # the scored frame (pandas), for the report
    report: Path | None = None
    environment: Path | None = None  # `source` it: the CLI then reads this run's state
    skew: str = ""  # what the monitor's skew checks found ("" when none ran)
    failure: str | None = None
    faults: list[FaultRecord] = field(default_factory=list)
    alerts: list[AlertSpan] | None = None  # None: the stack runs no Prometheus
    shadow: ShadowTrail | None = None  # with --shadow: the shadow's commits and verdict

    @property
    def closed(self) -> bool:
        """v2 serves; with --shadow, or the sync service applied the shadow's removal."""
        if self.v2 is not None:
            return True
        trail = self.shadow
        return trail is not None and trail.outcome == "removed" and "synced" in self.marks

    def seconds(self, start: str, end: str) -> float | None:
        if start in self.marks and end in self.marks:
            return (self.marks[end] - self.marks[start]).total_seconds()
        return None


def _now() -> datetime:
    return datetime.now(UTC)


def tear_down(base: Settings) -> None:
    """Remove what a loop on ``base`` left on the shared stack: the Serve applications its
    sync applied (Ray's REST API replaces them all) and its topics."""
    from driftloop.raycluster import dashboard_request

    dashboard_request(base, "PUT", "/api/serve/applications/", {"applications": []})
    admin = connect_admin(base)
    try:
        admin.delete_topics([t for t in admin.list_topics() if t.startswith(base.topic_prefix)])
    finally:
        admin.close()


def _drop_old_topics(base: Settings) -> None:
    """Topics of earlier demos (their prefix starts with ``<prefix>demo-``)."""
    admin = connect_admin(base)
    try:
        old = [t for t in admin.list_topics() if t.startswith(f"{base.topic_prefix}demo-")]
        if old:
            admin.delete_topics(old)
    finally:
        admin.close()


class _Watch:
    """Polls every source of truth once per call and records the first time each step of
    the loop is seen."""

    def __init__(self, settings: Settings, config: DemoConfig, result: DemoResult) -> None:
        self.settings = settings
        self.config = config
        self.result = result
        self.git = Git(Path(settings.git_repo))
        self.base_commit = self.git.rev(f"refs/heads/{settings.git_branch}")
        self.runs = RunStore(settings.runs)
        self.events = EventConsumer(settings, DriftEvent, group_id=f"{settings.topic_prefix}watch")
        # The watch reads the run's own drift topic whole: every partition from the start,
        # no group to join (a fresh-clone run once saw no event through a group that never
        # got its partitions while the monitor published a dozen).
        self.events.assign_from({})
        self.http = httpx.Client(headers=client_headers(settings), timeout=5)
        self.serve_path = str(
            (settings.deploy_dir / "apps" / config.model / "serve.yaml").relative_to(
                settings.git_repo
            )
        )

    def _mark(self, name: str) -> None:
        self.result.marks.setdefault(name, _now())

    def _on_events(self, batch: Sequence[Received[DriftEvent]]) -> None:
        for received in batch:
            event = received.event
            self.result.events.append(event)
            trail = self.result.shadow
            if event.kind == "shadow_verdict":
                if trail is not None and trail.verdict is None:
                    trail.verdict = event
                    self._mark("shadow_verdict")
                continue
            self._mark("detected")

    def serving_version(self) -> str | None:
        try:
            answer = self.http.get(f"{self.settings.serve_url}/{self.config.model}/model")
        except httpx.HTTPError:
            return None
        if answer.status_code != 200:
            return None
        version = answer.json().get("model_version")
        return version if isinstance(version, str) else None

    def poll(self) -> None:
        self.events.poll_batch(self._on_events, timeout_s=0.2)
        runs = self.runs.all(self.config.model)
        self.result.runs = runs
        for run in runs:
            self._mark("run_submitted")
            for step in run.steps.values():
                if step.started_at is not None:
                    self.result.marks.setdefault(f"step:{step.name}:start", step.started_at)
                if step.finished_at is not None and step.status == "succeeded":
                    self.result.marks.setdefault(f"step:{step.name}:end", step.finished_at)
        head = self.git.rev(f"refs/heads/{self.settings.git_branch}")
        trail = self.result.shadow
        landed = self.result.promotion_commit
        if trail is not None:
            trail.follow(self.git, self.base_commit, head, self.serve_path, self.config.model)
            if trail.shadow_commit:
                self._mark("shadow_committed")
            if trail.verdict_commit and landed is None:
                landed = trail.verdict_commit
                if trail.outcome == "promoted":
                    self.result.promotion_commit = landed
                    self.result.promotion_message = trail.verdict_message
                self._mark("promoted" if trail.outcome == "promoted" else "removed")
        elif head != self.base_commit and landed is None:
            landed = self.result.promotion_commit = head
            self.result.promotion_message = self.git.run("log", "-1", "--format=%B", head)
            self._mark("promoted")
        state = read_state(self.settings)
        synced = state.synced_sha if state is not None else None
        if trail is not None and synced and synced == trail.shadow_commit:
            self._mark("shadow_synced")
        if landed and synced == landed:
            self._mark("synced")
        version = self.serving_version()
        if version and version != self.result.v1 and self.result.v2 is None:
            self.result.v2 = version
            self._mark("v2_serving")

    def step_line(self) -> str:
        if not self.result.runs:
            return "no run yet"
        run = self.result.runs[-1]
        steps = " → ".join(f"{s.name}:{s.status}" for s in run.steps.values())
        return f"run {run.run_id} {run.status}: {steps or 'starting'}"

    def close(self) -> None:
        self.events.close()
        self.http.close()


def _phase(result: DemoResult, onset: datetime) -> str:
    marks = result.marks
    for name, label in (
        ("v2_serving", "v2 serving"),
        ("synced", "verdict synced" if "removed" in marks else "syncing v2"),
        ("removed", "shadow removed, syncing"),
        ("promoted", "promoted, syncing"),
        ("shadow_verdict", "verdict published, committing"),
        ("shadow_synced", "v2 in shadow, judged live"),
        ("shadow_committed", "v2 committed as shadow, syncing"),
        ("run_submitted", "retraining"),
        ("detected", "drift detected"),
    ):
        if name in marks:
            return label
    return "drifting, watching" if _now() >= onset else "steady traffic (v1)"


def _monitor_line(settings: Settings, model: str) -> str:
    from driftloop.drift import AuditStore

    records = AuditStore(settings.state_dir / "monitor", model).records()
    data = [r for r in records if r.kind == "data" and r.columns]
    perf = [r for r in records if r.kind == "performance" and r.metrics]
    parts = [f"{len(records)} windows"]
    if data:
        last = data[-1]
        top = max(last.columns, key=lambda c: c.effect)
        drifted = sum(c.category == "DRIFT" for c in last.columns)
        parts.append(f"last window {drifted} drifted, top effect {top.column} {top.effect:.2f}")
    if perf:
        m = perf[-1].metrics
        recall, pr_auc = m.get("recall_at_threshold", float("nan")), m.get("pr_auc", float("nan"))
        parts.append(f"recall {recall:.2f}, PR-AUC {pr_auc:.2f} ({perf[-1].verdict})")
    return "; ".join(parts)


def run_demo(base: Settings, config: DemoConfig, root: Path, echo: Echo = print) -> DemoResult:
    """Run the loop under ``root`` (wiped first) on the stack ``base`` points to."""
    from driftloop_simulator import GeneratorConfig, StreamConfig, WorldConfig, choose_scenario
    from driftloop_simulator import run_stream as simulate

    started, begun = time.monotonic(), _now()
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    settings = demo_settings(base, root, stamp)
    result = DemoResult(root, settings, config)
    result.environment = write_environment(settings, root / "driftloop.env")
    _drop_old_topics(base)
    ensure_topics(settings)
    echo(f"[setup] state under {root}; topics {settings.topic_prefix}*")
    repo, _ = deployment_repository(settings, base.deploy_dir, config)
    echo(f"[setup] deployment repository {repo} (git log there shows every promotion)")
    history = labelled_history(settings, config, lambda line: echo(f"[setup] {line}"))
    result.marks["history"] = history.end
    v1 = first_model(settings, config, history, lambda line: echo(f"[v1] {line}"))
    result.v1 = v1.version
    result.v1_metrics = dict(v1.metrics)
    if config.shadow:
        policy = commit_shadow_policy(settings, config.model)
        result.shadow = ShadowTrail()
        echo(
            f"[shadow] commit {policy[:10]}: retrain.yaml promote_as: shadow — the run's "
            "challenger will be scored beside v1 and judged on live labels"
        )
    services = Services(
        settings,
        root / "logs",
        default_ports=config.default_ports,
        stack=base,
        environment={"stream": {"DRIFTLOOP_STREAM_LINGER_S": str(config.stream_linger_s)}},
    )
    watch: _Watch | None = None
    stop = threading.Event()
    stream_thread: threading.Thread | None = None
    stats_box: list[Any] = []
    interrupted = False
    try:
        # Every service starts now: the stream, monitor and trigger restore their state
        # while the sync service brings v1 to Ray Serve (about 30 s), not after it.
        for name in ("sync", "stream", "monitor", "trigger"):
            services.start(name)
        deadline = time.monotonic() + 300
        client = httpx.Client(headers=client_headers(settings), timeout=5)
        while True:
            try:
                answer = client.get(f"{settings.serve_url}/{config.model}/model")
                if answer.status_code == 200 and answer.json().get("model_version") == v1.version:
                    break
                if answer.status_code == 401:
                    raise LoopNotClosed(
                        f"Serve answered 401 to the demo's key ({key_source(settings)}): the "
                        "replicas have another (`make down && make up` gives the Ray head "
                        "the key file that `driftloop status` shows)"
                    )
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise LoopNotClosed("the sync service did not bring v1 to Ray Serve in 300 s")
            time.sleep(1)
        client.close()
        result.marks["v1_serving"] = _now()
        echo(
            f"[serve] v1 serving at {settings.serve_url}/{config.model}/predict "
            f"(synced from git in {time.monotonic() - started:.0f} s since start)"
        )
        # Traffic before the stream has restored its windows would be scored on the
        # online store as the history left it (measured: ~20 s of stale features).
        try:
            services.wait_ready(("stream", "monitor", "trigger"))
        except (RuntimeError, TimeoutError) as exc:
            raise LoopNotClosed(f"{exc} (logs in {root}/logs)") from exc
        echo("[services] stream, monitor and trigger ready")
        warp = config.time_warp
        scenario = choose_scenario(config.scenario, config.onset_s * warp, config.strength)
        stream = StreamConfig(
            world=WorldConfig(
                seed=config.seed, n_customers=config.customers, n_merchants=config.merchants
            ),
            generator=GeneratorConfig(
                fraud_rate=config.fraud_rate, fraud_delay_s=60, weekly=config.seasonal
            ),
            rate=config.rate,
            label_delay_s=config.label_delay_s,
            drain_labels=False,
            predict_url=f"{settings.serve_url}/{config.model}/predict",
            predict_timeout_s=10.0,
            predict_batch=config.predict_batch,
            customer_gap_s=config.customer_gap_s,
            progress_every_s=config.progress_every_s,
            run_id=stamp[-8:],  # transaction ids stay unique across runs...
            draw_key=f"demo-{config.seed}",  # ...while the traffic repeats with the seed
            time_warp=warp,
        )
        lines: list[str] = [""]

        def traffic() -> None:
            stats_box.append(
                simulate(settings, stream, scenario=scenario, stop=stop, echo=lines.append)
            )

        stream_thread = threading.Thread(target=traffic, name="traffic", daemon=True)
        result.marks["traffic"] = _now()
        stream_thread.start()
        onset = result.marks["traffic"] + timedelta(seconds=config.onset_s)
        result.marks["onset"] = onset
        result.virtual_onset = result.marks["traffic"] + timedelta(seconds=config.onset_s * warp)
        echo(
            f"[traffic] {config.rate:g} payments/s through the endpoint, event time running "
            f"{warp:.0f}x (a simulated hour every {3600 / warp:.0f} s); scenario "
            f"{config.scenario!r} (strength {config.strength:g}) starts at "
            f"{onset:%H:%M:%S}"
        )
        watch = _Watch(settings, config, result)
        alerts = Alerts(base, config.model)
        plan = FaultPlan(config.faults, result.marks["traffic"], onset)
        result.faults = plan.fired
        last_print, closed_at = 0.0, None
        limit = time.monotonic() + config.timeout_s
        while True:
            watch.poll()
            for name in plan.due(result.marks, _now()):
                _fire(name, plan, services, settings, config, echo)
            now = time.monotonic()
            if result.closed and closed_at is None:
                closed_at = now
                echo(
                    (
                        f"[loop] v2 {result.v2} serving — the loop closed; "
                        if result.v2
                        else "[loop] the shadow was removed, v1 serves — the loop closed; "
                    )
                    + f"{config.after_v2_s:g} s more traffic for the comparison"
                )
            if closed_at is not None and now - closed_at >= config.after_v2_s:
                # ...and until the drift alerts resolve (a window of v2's judged fine)
                firing = alerts.firing()
                if not firing or now - closed_at >= config.after_v2_s + config.alerts_resolve_s:
                    break
            dead = [n for n, ok in services.alive().items() if not ok]
            if dead:
                raise LoopNotClosed(f"service(s) exited: {', '.join(dead)} (logs in {root}/logs)")
            if stream_thread is not None and not stream_thread.is_alive():
                raise LoopNotClosed("the traffic stopped by itself: " + lines[-1])
            if now > limit:
                raise LoopNotClosed(
                    f"not closed after {config.timeout_s:g} s; phase: {_phase(result, onset)}; "
                    f"{watch.step_line()}"
                )
            if now - last_print >= config.progress_every_s:
                last_print = now
                echo(f"[{_phase(result, onset)}] {lines[-1]}")
                echo(
                    f"    monitor: {_monitor_line(settings, config.model)}; "
                    f"drift events {len(result.events)}; {watch.step_line()}"
                )
            time.sleep(1)
    except LoopNotClosed as exc:
        result.failure = str(exc)
        echo(f"[loop] NOT CLOSED: {exc}")
    except BaseException:
        interrupted = True  # Ctrl-C or SIGTERM: stop everything, count nothing
        raise
    finally:
        stop.set()
        if stream_thread is not None:
            stream_thread.join(timeout=60)
        if watch is not None:
            if not interrupted:
                _settle(settings, result, stats_box, echo)
                watch.poll()
            watch.close()
        services.close()
    _evaluate(settings, config, result, echo)
    result.marks["end"] = _now()
    _alert_history(base, config, result, begun, echo)
    echo(f"[done] {time.monotonic() - started:.0f} s in all")
    return result


def _alert_history(
    base: Settings, config: DemoConfig, result: DemoResult, begun: datetime, echo: Echo
) -> None:
    """What the stack's Prometheus alerted on while the demo ran."""
    result.alerts = Alerts(base, config.model).history(begun, result.marks["end"])
    if result.alerts is None:
        echo("[alerts] no Prometheus answers on the stack (`make up` starts one)")
    for span in result.alerts or []:
        echo(f"[alerts] {span.line()}")


def _fire(
    name: str,
    plan: FaultPlan,
    services: Services,
    settings: Settings,
    config: DemoConfig,
    echo: Echo,
) -> None:
    """SIGKILL ``name`` and bring it back: a service is started again at once (as its
    supervisor would), a Serve replica is replaced by Serve itself."""
    if name == "replica":
        try:
            pid, before = kill_replica(settings, config.model)
            fault = plan.record(name, pid)
            echo(f"[fault] SIGKILL a Serve replica of {config.model} (pid {pid})")
            actor = wait_for_replacement(settings, config.model, before)
        except (RuntimeError, TimeoutError) as exc:
            raise LoopNotClosed(f"replica fault: {exc}") from exc
        fault.detail = f"replaced by actor {actor[:12]}"
    else:
        pid = services.kill(name)
        fault = plan.record(name, pid)
        echo(f"[fault] SIGKILL the {name} service (pid {pid})")
        services.start(name)
        fault.detail = "started again"
    fault.back_at = _now()
    echo(f"[fault] {name}: {fault.detail} after {fault.down_s:.1f} s")


def failure_reasons(counts: Counts) -> str:
    """``: timeout 1, HTTP 503 2`` after a failure count, or nothing."""
    from driftloop_simulator import failure_summary

    return f": {failure_summary(counts.predict_failures)}" if counts.predict_failures else ""


def _settle(settings: Settings, result: DemoResult, stats_box: list[Any], echo: Echo) -> None:
    """After the traffic: wait (90 s at most) until the stream service has checkpointed
    every transaction and the monitor every logged prediction, then count."""
    counts = result.counts
    if stats_box:
        stats = stats_box[0]
        counts.sent, counts.labels_sent = stats.sent, stats.labels_sent
        counts.predicted_ok, counts.predicted_failed = stats.predict_ok, stats.predict_failed
        counts.predict_failures = dict(stats.predict_failures)
        counts.predict_retried = stats.predict_retried
    deadline = time.monotonic() + 90
    while True:
        counts.transactions = end_offsets(settings, "transactions")
        counts.records_logged = end_offsets(settings, "predictions")
        stream = stream_position(settings)
        monitor = monitor_position(settings, result.config.model)
        caught_up = (
            stream.consumed >= counts.transactions and monitor.consumed >= counts.records_logged
        )
        if caught_up or time.monotonic() > deadline:
            break
        time.sleep(1)
    counts.stream_consumed, counts.feature_rows = stream.consumed, stream.rows
    counts.monitor_consumed = monitor.consumed
    counts.rows_in_closed_windows = monitor.rows
    counts.rows_windowed = monitor.rows + monitor.open_rows
    counts.predictions_logged = len(read_topic(settings, Prediction))
    echo(
        f"[counts] sent {counts.sent}, answered {counts.predicted_ok} "
        f"(failed {counts.predicted_failed}{failure_reasons(counts)}, "
        f"{counts.predict_retried} retries); "
        f"transactions on the topic {counts.transactions}, checkpointed by the stream "
        f"{counts.stream_consumed}, feature rows {counts.feature_rows}; predictions logged "
        f"{counts.predictions_logged} in {counts.records_logged} records, checkpointed by the "
        f"monitor {counts.monitor_consumed} records, "
        f"windowed {counts.rows_windowed} ({counts.rows_in_closed_windows} in closed windows)"
    )


def _evaluate(settings: Settings, config: DemoConfig, result: DemoResult, echo: Echo) -> None:
    """v1 against v2 on the labelled post-drift rows v2 was not trained on, and what the
    monitor's skew checks found."""
    from driftloop.drift import AuditStore
    from driftloop.models import ModelStore

    predictions = read_topic(settings, Prediction)
    labels = read_topic(settings, Label)
    frame = scored_frame(predictions, labels)
    result.counts.predictions_distinct = len({p.transaction_id for p in predictions})
    result.scores = frame
    records = AuditStore(settings.state_dir / "monitor", config.model).records()
    result.skew = skew_summary(records)
    if not result.v2:
        return
    v2 = ModelStore.from_settings(settings).get(config.model, result.v2)
    onset = result.virtual_onset or result.marks["onset"]
    since = max(v2.metadata.training_window.end, onset)
    result.comparison = compare_models(
        settings, config.model, {"v1": result.v1, "v2": result.v2}, frame, since
    )
    c = result.comparison
    echo(
        f"[compare] {c.rows} labelled rows after {since:%H:%M:%S} ({c.positives} fraud): "
        f"PR-AUC v1 {c.pr_auc.get('v1', float('nan')):.3f} → v2 "
        f"{c.pr_auc.get('v2', float('nan')):.3f}; recall v1 {c.recall['v1']:.2f} → "
        f"v2 {c.recall['v2']:.2f}"
    )
    windows = sum(1 for r in records if r.kind == "data" and r.version == result.v2)
    events = sum(1 for e in result.events if e.model_version == result.v2)
    v1_live = live_figures(frame, result.v1, onset)
    result.healing = healing(result.v1_metrics, c, windows, events, v1_live)
    echo(f"[heal] {result.healing.line()}")
