"""predictions (+ labels) → windows profiled with whylogs → drift and performance events.

Each micro-batch runs in one checkpoint transaction: rows join their windows, labels join
predictions (and are counted as evidence), closed windows are judged and their records
written with the change point, events enter the outbox, offsets advance.
Only after the commit are the outbox's events published (see ``_outbox``), so a crash
anywhere replays the batch or finds its events waiting, and no event is published twice.

Shadow predictions are not windowed: with ``shadow`` and ``performance`` enabled they pair
with the serving score and the label of the same payment (``_shadow``). Canary predictions
are answers, windowed per version; with ``canary`` and ``performance`` enabled they are
also joined to their labels beside the serving version's labelled rows of the same period
(``_canary``). Both kinds of pairs are judged at the end of each batch (``_verdicts``); a
verdict is a drift event of kind ``shadow_verdict`` or ``canary_verdict`` in the same
outbox, which the trigger service acts on in git.

Each labelled evaluation also keeps the version's live figures; a version promoted after
another is judged against that one's last figures for a few evaluations (``_rollback``),
and a significant regression is a drift event of kind ``rollback`` in the same outbox,
which the trigger acts on by reverting the promotion in git.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TypeVar

from driftloop.drift import AuditStore, WindowRecord, load_policy
from driftloop.events import DriftEvent, Event, Label, Prediction, Transaction
from driftloop.kafka import Batch, EventConsumer, EventProducer, connect_consumer
from driftloop.metrics import serve_metrics
from driftloop.models import ModelStore
from driftloop_monitor._canary import CanaryJoin
from driftloop_monitor._changepoint import ChangePoints, evaluation_start
from driftloop_monitor._checkpoint import Checkpoint
from driftloop_monitor._join import LabelJoin
from driftloop_monitor._judge import Judged, judge_drift, judge_performance
from driftloop_monitor._live import LiveJoin, Pair
from driftloop_monitor._metrics import MonitorMetrics
from driftloop_monitor._outbox import Outbox
from driftloop_monitor._references import References
from driftloop_monitor._rollback import Rollbacks
from driftloop_monitor._settings import MonitorSettings
from driftloop_monitor._settle import Settling, window_label
from driftloop_monitor._shadow import ShadowJoin
from driftloop_monitor._skew import SkewCheck
from driftloop_monitor._verdicts import Judgement, judge_due
from driftloop_monitor._windows import ClosedWindow, Windows

E = TypeVar("E", bound=Event)
Verdicts = list[tuple[LiveJoin, Pair, Judgement, DriftEvent | None]]
log = logging.getLogger(__name__)


class MonitorService:
    def __init__(self, settings: MonitorSettings) -> None:
        self.settings = settings
        self.policy = load_policy(settings.policy_path)
        if self.policy.model != settings.monitor_model:
            raise ValueError(f"{settings.policy_path} is the policy of {self.policy.model!r}, "
                             f"not of {settings.monitor_model!r}")  # fmt: skip
        self.model = self.policy.model
        self.metrics = MonitorMetrics.create()
        # 0 from the start, also after a restart mid-drift: every drifted window past the
        # policy's streak (kept in the checkpoint) publishes an event, which sets it again.
        for kind in ("data", "performance"):
            self.metrics.drifting.labels(self.model, kind).set(0)
        self.checkpoint = Checkpoint(settings.checkpoint_path)
        self.audit = AuditStore(settings.audit_root, self.model)
        self.references = References(ModelStore.from_settings(settings), self.model)
        self.producer = EventProducer(settings)
        self.outbox = Outbox(settings, self.checkpoint, self.producer)
        self.windows = Windows(self.policy.window, self.checkpoint)
        self.settling = Settling(self.policy.drift, self.checkpoint)
        self.join = LabelJoin(self.checkpoint, self.policy.performance)
        self.changes = ChangePoints(
            self.checkpoint, self.join if self.policy.performance.enabled else None
        )
        self.shadows: ShadowJoin | None = None
        if self.policy.shadow.enabled and self.policy.performance.enabled:
            self.shadows = ShadowJoin(self.checkpoint, self.policy.shadow, self.policy.performance)
            self.join.on_join.append(self.shadows.served)
        elif self.policy.shadow.enabled:
            log.warning("shadows are not judged: their labels come with performance.enabled")
        self.canaries: CanaryJoin | None = None
        if self.policy.canary.enabled and self.policy.performance.enabled:
            self.canaries = CanaryJoin(self.checkpoint, self.policy.canary, self.policy.performance)
            self.join.on_join.append(self.canaries.served)
        elif self.policy.canary.enabled:
            log.warning("canaries are not judged: their labels come with performance.enabled")
        self.rollbacks = Rollbacks(self.checkpoint, self.policy)
        self.label_watermark = self.checkpoint.get("label_watermark", 0.0)
        self.predictions = self._consumer(Prediction)
        self.labels = self._consumer(Label) if self.policy.performance.enabled else None
        self.skew: SkewCheck | None = None
        self.transactions: EventConsumer[Transaction] | None = None
        if self.policy.skew.enabled:
            self.skew = SkewCheck(
                self.policy.skew, self.policy.window.rows, self.checkpoint, self.audit,
                settings, self.references.feature_service,
            )  # fmt: skip
            self.transactions = self._consumer(Transaction)
        self._restore()

    def _consumer(self, contract: type[E]) -> EventConsumer[E]:
        s = self.settings
        # Small fetches per partition interleave the partitions of a backlog closely, so
        # event time advances evenly and aligned windows need little lateness.
        consumer = connect_consumer(
            s,
            s.monitor_group,
            max_poll_records=s.monitor_batch_max,
            max_partition_fetch_bytes=s.monitor_fetch_bytes,
        )
        return EventConsumer(
            s,
            contract,
            s.monitor_group,
            dlq=self.producer,
            consumer=consumer,
            max_records=s.monitor_batch_max,
            linger_s=s.monitor_linger_s,
        )

    def _restore(self) -> None:
        self.predictions.assign_from(self.checkpoint.offsets(self.predictions.topic))
        if self.labels is not None:
            self.labels.assign_from(self.checkpoint.offsets(self.labels.topic))
        if self.transactions is not None:
            self.transactions.assign_from(self.checkpoint.offsets(self.transactions.topic))
        self.outbox.recover()
        self.outbox.flush()
        self.metrics.open_rows.set(self.windows.rows)
        log.info("restored %d rows in %d open windows; policy %s", self.windows.rows,
                 len(self.windows.open), self.settings.policy_path)  # fmt: skip

    # --- handlers

    def handle_predictions(self, batch: Batch[Prediction]) -> None:
        closed: list[ClosedWindow] = []
        judged: list[Judged] = []
        verdicts: Verdicts = []
        other = shadow = 0
        self.rollbacks.judged.clear()
        with self.checkpoint.transaction():
            for received in batch:
                p = received.event
                if p.model_name != self.model:
                    other += 1
                    continue
                t = p.event_time.timestamp()
                if p.role == "shadow":  # never windowed: the windows are the serving one's
                    shadow += 1
                    if self.shadows is not None:
                        self.shadows.shadow(p.transaction_id, p.model_version, t, p.score,
                                            p.decision)  # fmt: skip
                    continue
                seq, window = self.windows.add(
                    received.partition, p.model_version, t, p.score, p.features
                )
                if self.skew is not None and seq is not None:
                    self.skew.prediction(p.transaction_id, p.model_version, t, p.features, seq)
                if window is not None:
                    closed.append(window)
                if p.role == "canary":
                    # An answer, so windowed (per version) like the serving one's; not in
                    # the label join: its labelled rows are a challenger's, judged beside
                    # the serving version's, whose live figures (and rollback watch) are
                    # its own.
                    if self.canaries is not None:
                        self.canaries.canary(p.transaction_id, p.model_version, t, p.score,
                                             p.decision)  # fmt: skip
                    continue
                if self.labels is not None:
                    if self.canaries is not None:  # first: a canary pair it counts for opens
                        self.canaries.serving(p.model_version, t)
                    joined = self.join.prediction(p.transaction_id, p.model_version, t, p.score,
                                                  p.decision)  # fmt: skip
                    if joined is not None:
                        judged.extend(self._evaluate(joined))
                    if self.shadows is not None:
                        self.shadows.serving(p.transaction_id, p.model_version, p.score,
                                             p.decision)  # fmt: skip
            closed.extend(self.windows.expire())
            judged.extend(self._close(w) for w in closed)
            verdicts = self._judge_challengers()
            self.windows.save()
            self.checkpoint.save_offsets(self.predictions.topic, batch.next_offsets)
        self.metrics.skipped.labels("other_model").inc(other)
        self.metrics.skipped.labels("shadow").inc(shadow)
        self.metrics.predictions.inc(len(batch) - other - shadow)
        self._after_commit(judged, verdicts)

    def handle_transactions(self, batch: Batch[Transaction]) -> None:
        """Keep the sampled transactions the skew check will ask Feast about."""
        assert self.skew is not None and self.transactions is not None
        with self.checkpoint.transaction():
            for received in batch:
                self.skew.transaction(received.event)
            self.skew.prune()
            self.checkpoint.save_offsets(self.transactions.topic, batch.next_offsets)

    def handle_labels(self, batch: Batch[Label]) -> None:
        assert self.labels is not None
        judged: list[Judged] = []
        verdicts: Verdicts = []
        self.rollbacks.judged.clear()
        with self.checkpoint.transaction():
            for received in batch:
                label = received.event
                t = label.event_time.timestamp()
                self.label_watermark = max(self.label_watermark, t)
                version = self.join.label(label.transaction_id, label.is_fraud, t)
                self.metrics.labels.labels("joined" if version else "waiting").inc()
                if version is not None:
                    judged.extend(self._evaluate(version))
                if self.shadows is not None:
                    self.shadows.label(label.transaction_id, label.is_fraud)
                if self.canaries is not None:
                    self.canaries.label(label.transaction_id, label.is_fraud, t)
            self.checkpoint.put("label_watermark", self.label_watermark)
            verdicts = self._judge_challengers()
            self.join.prune(self.windows.watermark, self.label_watermark)
            if self.shadows is not None:
                self.shadows.prune(self.windows.watermark, self.label_watermark)
            if self.canaries is not None:
                self.canaries.prune(self.label_watermark)
            self.checkpoint.save_offsets(self.labels.topic, batch.next_offsets)
        self._after_commit(judged, verdicts)

    def _close(self, window: ClosedWindow) -> Judged:
        before, _ = self.checkpoint.streak(window.version, "data")
        ref = self.references.get(window.version)
        bases = self.settling.bases(ref, window.start) if ref is not None else {}
        judged, streak = judge_drift(self.policy, window, ref, before, bases)
        self.checkpoint.set_streak(window.version, "data", streak)
        judged = self.changes.follow("data", before, window.start.timestamp(), judged)
        self._record(judged)
        if judged.tests:  # judged: the columns whose horizon has passed are rebased on it
            label = window_label(window.start, window.end)
            adopted = self.settling.adopt(window.version, bases, label, judged.profile)
            if adopted:
                log.info("%s: %s rebased on window %s", window.version, ", ".join(adopted),
                         label)  # fmt: skip
        if self.skew is not None:
            self.skew.closed(judged.record, [row.seq for row in window.rows])
        return judged

    def _judge_challengers(self) -> Verdicts:
        """Inside the batch's transaction: the shadow and canary pairs due, judged;
        verdicts into the outbox."""
        verdicts: Verdicts = []
        for join in (self.shadows, self.canaries):
            if join is None:
                continue
            for pair, judged, event in judge_due(self.policy, join, self.label_watermark):
                if event is not None:
                    self.outbox.add(event)
                verdicts.append((join, pair, judged, event))
        return verdicts

    def _evaluate(self, version: str) -> list[Judged]:
        if not self.policy.performance.enabled:
            return []
        rows = self.join.due(version)
        if rows is None:
            return []
        before, since = self.checkpoint.streak(version, "performance")
        ref = self.references.get(version)
        judged, streak = judge_performance(self.policy, version, rows, ref, before)
        self.checkpoint.set_streak(version, "performance", streak, since)
        start = evaluation_start([r[0] for r in rows])
        judged = self.changes.follow("performance", before, start, judged)
        self._record(judged)
        watched = self.rollbacks.evaluated(version, rows)
        if watched is not None and watched.event is not None:
            self.outbox.add(watched.event)
        return [judged]

    def _record(self, judged: Judged) -> None:
        """Inside the batch's transaction: the audit files, then the outbox entry."""
        self.audit.write(judged.record, judged.profile)
        if judged.event is not None:
            self.outbox.add(judged.event)

    def _after_commit(self, judged: list[Judged], verdicts: Verdicts) -> None:
        m, r = self.metrics, None
        self._challenger_gauges(verdicts)
        for j in judged:
            r = j.record
            m.windows.labels(self.model, r.kind, r.verdict).inc()
            for t in j.tests:
                labels = (self.model, r.version, t.column, t.algorithm)
                m.statistic.labels(*labels).set(t.statistic)
                m.effect.labels(*labels).set(t.effect)
                if t.p_value is not None:
                    m.p_value.labels(*labels).set(t.p_value)
            for column, counts in r.quality.items():
                for kind, n in counts.items():
                    m.bad_values.labels(column, kind).inc(n)
            if r.kind == "performance":
                for name, value in r.metrics.items():
                    m.performance.labels(self.model, r.version, name).set(value)
            if j.event is not None:
                log.info("%s event %s for %s window %s..%s", j.event.kind, j.event.event_id,
                         r.version, r.start, r.end)  # fmt: skip
        self.outbox.flush()
        for j in judged:
            if j.event is not None:
                m.events.labels(self.model, j.event.kind).inc()
                m.drifting.labels(self.model, j.record.kind).set(1)
            elif j.record.verdict in ("no_drift", "ok"):
                m.drifting.labels(self.model, j.record.kind).set(0)
        for _, _, _, event in verdicts:
            if event is not None:
                m.events.labels(self.model, event.kind).inc()
        self._rollback_gauges()
        m.skipped.labels("late").inc(self.windows.late)
        self.windows.late = 0
        m.open_rows.set(self.windows.rows)

    def _rollback_gauges(self) -> None:
        m = self.metrics
        for w in self.rollbacks.judged:
            m.rollback_armed.labels(self.model, w.version, w.previous).set(float(w.armed))
            m.rollback_evaluations.labels(self.model, w.verdict).inc()
            for c in w.comparisons:
                m.rollback_p_worse.labels(self.model, w.version, c.metric).set(c.p_worse)
            if w.event is not None:
                m.events.labels(self.model, w.event.kind).inc()
                log.warning("rollback event %s: %s regressed against %s on evaluation %d",
                            w.event.event_id, w.version, w.previous, w.evaluation)  # fmt: skip
        self.rollbacks.judged.clear()

    def _challenger_gauges(self, verdicts: Verdicts) -> None:
        m = self.metrics
        if self.shadows is not None:
            counts = self.shadows.counts
            m.shadow_pairs.inc(counts.paired)
            m.shadow_unpaired.labels("expired").inc(counts.expired)
            m.shadow_unpaired.labels("evicted").inc(counts.evicted)
            counts.paired = counts.expired = counts.evicted = 0
        if self.canaries is not None:
            c = self.canaries.counts
            m.canary_labelled.labels("canary").inc(c.labelled)
            m.canary_labelled.labels("serving").inc(c.served)
            m.canary_unlabelled.labels("expired").inc(c.expired)
            m.canary_unlabelled.labels("evicted").inc(c.evicted)
            c.labelled = c.served = c.expired = c.evicted = 0
        for join, pair, judged, event in verdicts:
            role = join.role
            labels = (self.model, pair.serving, pair.challenger)
            if role == "shadow":
                m.shadow_rows.labels(*labels, "rows").set(judged.rows)
                m.shadow_rows.labels(*labels, "positives").set(judged.positives)
            else:
                for side, values in (("serving", judged.serving), ("canary", judged.challenger)):
                    for kind in ("rows", "positives"):
                        m.canary_rows.labels(*labels, side, kind).set(values[kind])
            verdict_gauge = m.shadow_verdict if role == "shadow" else m.canary_verdict
            metric_gauge = m.shadow_metric if role == "shadow" else m.canary_metric
            for verdict in ("better", "worse", "unknown"):
                verdict_gauge.labels(*labels, verdict).set(float(verdict == judged.verdict))
            for side, values in (("serving", judged.serving), (role, judged.challenger)):
                for name, value in values.items():
                    if name not in ("rows", "positives"):
                        metric_gauge.labels(*labels, side, name).set(value)
            live = event.live_verdict if event is not None else None
            if event is not None and live is not None:
                past = " past its deadline" if live.verdict == "unknown" else ""
                log.info("%s event %s: %s %s of %s against serving %s: %s%s (%d labelled rows,"
                         " %d positives: %s); asks to %s", event.kind, event.event_id, role,
                         live.version, self.model, pair.serving, live.verdict, past, live.rows,
                         live.positives, live.reason, live.action)  # fmt: skip

    # --- loop

    def run(self, stop: threading.Event, exit_when_idle_s: float | None = None) -> None:
        server = serve_metrics(self.settings, self.settings.monitor_metrics_port,
                               self.metrics.registry)  # fmt: skip
        log.info("metrics on %s", server.url)
        idle_since = last_rate = time.monotonic()
        counted, next_lag = 0, 0.0
        try:
            while not stop.is_set():
                got = self.predictions.poll_batch(self.handle_predictions, timeout_s=0.25).received
                counted += got
                if self.labels is not None:
                    got += self.labels.poll_batch(self.handle_labels, timeout_s=0.05).received
                if self.transactions is not None:
                    got += self.transactions.poll_batch(
                        self.handle_transactions, timeout_s=0.05
                    ).received
                if self.skew is not None:
                    self._skewed(self.skew.run_due())
                now = time.monotonic()
                if got:
                    idle_since = now
                elif exit_when_idle_s is not None and now - idle_since > exit_when_idle_s:
                    break
                if now >= next_lag:
                    self._gauges(counted / max(now - last_rate, 1e-9))
                    counted, last_rate, next_lag = 0, now, now + 5
        finally:
            server.shutdown()

    def _skewed(self, records: list[WindowRecord]) -> None:
        for record in records:
            if record.skew is None:
                continue
            for column in record.skew.columns:
                labels = (self.model, record.version, column.column)
                self.metrics.skew_share.labels(*labels).set(column.differing)
                if column.mean_diff is not None:
                    self.metrics.skew_mean_diff.labels(*labels).set(column.mean_diff)

    def _gauges(self, rate: float) -> None:
        m = self.metrics
        m.rows_per_second.set(rate)
        m.lag.labels(self.predictions.topic).set(self.predictions.lag())
        if self.labels is not None:
            m.lag.labels(self.labels.topic).set(self.labels.lag())
        m.awaiting_labels.set(self.join.waiting())
        if self.shadows is not None:
            m.shadow_pending.set(self.shadows.pending())
        if self.canaries is not None:
            m.canary_pending.set(self.canaries.pending())

    def close(self) -> None:
        self.predictions.close()
        if self.labels is not None:
            self.labels.close()
        if self.transactions is not None:
            self.transactions.close()
        self.producer.close()
        self.checkpoint.db.close()
