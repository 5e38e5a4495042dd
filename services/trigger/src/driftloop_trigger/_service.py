"""drift-events → decisions → at most one retraining run per model at a time.

Each micro-batch: decide every new event (policy, dedupe, active run, cooldown, budget,
evidence) and record the decisions with the offsets past the batch in one SQLite
transaction; then work the outbox — submit each decided run under
``run_id_for_event(event_id)`` and publish a ``workflow-events`` record per decision
(``submitted``, ``waiting`` or ``skipped`` with the reason) — and only then let the
consumer commit offsets to Kafka.

A crash after recording and before submitting leaves a decision without a submission;
the next start submits it under the same run id, and a backend that had it already
answers ``created=False`` (the local executor then starts the run's driver if it never
started). Every ``trigger_recover_s`` (and at start) the local executor's runs without a
live driver are started, resumed or failed, so a run never stays active — blocking every
later event of its model — because a driver died while the trigger ran.

A severe event with too little labelled evidence after the change point is held (a
``waiting`` workflow event under the run id it would start); the model's waiting record
lives in the decision store and is mirrored, for ``driftloop runs``, in a
:class:`~driftloop.runs.WaitingStore` file. The periodic pass also decides each held
model's latest event again, so ``max_wait`` submits a run even when no event arrives.

Workflow events are published at least once, under ids derived from (run id, phase), so a
repeat is a duplicate consumers recognise.

A ``shadow_verdict`` or ``canary_verdict`` event (the monitor judged a shadow or canary
version on live labels) is not decided by the retraining policy: it is kept with the
batch's offsets and then acted on in git (``_verdict``): the challenger promoted, or
removed, by a commit that carries the verdict's evidence, at most once per verdict, and
only where git still declares what the verdict judged. A ``rollback`` event (a promoted
version regressed live) is kept and acted on the same way (``_rollback``): the promotion
reverted by one commit carrying the evidence. After a rollback the model gets no run, no
promotion and no other rollback for the policy's ``rollback.cooldown``, and events of the
version rolled back start no run.
"""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Literal

from driftloop.events import DriftEvent, WorkflowEvent, utcnow
from driftloop.kafka import Batch, EventConsumer, EventProducer
from driftloop.metrics import serve_metrics
from driftloop.runs import (
    LocalExecutor,
    RunRecord,
    RunStore,
    Waiting,
    WaitingStore,
    backend,
    run_id_for_event,
)
from driftloop_trigger._decide import Decision, ModelHistory, decide, merge_history
from driftloop_trigger._metrics import TriggerMetrics
from driftloop_trigger._policy import Policies, PolicyError, TriggerPolicy
from driftloop_trigger._rollback import act_on_rollback
from driftloop_trigger._settings import TriggerSettings
from driftloop_trigger._store import DecisionStore, Held, Recorded, horizon
from driftloop_trigger._verdict import Acted, act

WORKFLOW = "driftloop-retrain"
ACTED_ON = ("shadow_verdict", "canary_verdict", "rollback")
"""Event kinds acted on in git rather than decided by the retraining policy."""
log = logging.getLogger(__name__)


def parameters_for(event: DriftEvent, policy: TriggerPolicy) -> dict[str, str]:
    """The retraining workflow's parameters for a run an event asked for."""
    end = event.window.end.isoformat() if policy.window_end == "event" else ""
    return {
        "change-point": event.change_point.isoformat() if event.change_point else "",
        "model": event.model_name,
        "reason": event.kind,
        "trigger-event-id": event.event_id,
        "window": policy.window,
        "window-end": end,
    }


class TriggerService:
    def __init__(self, settings: TriggerSettings, clock: Callable[[], datetime] = utcnow) -> None:
        self.settings = settings
        self.clock = clock
        self.metrics = TriggerMetrics.create()
        self.policies = Policies(settings.policy_root)
        loaded = self.policies.load_all()  # an invalid policy stops the start, loudly
        log.info("policies: %s", ", ".join(sorted(loaded)) or f"none under {settings.policy_root}")
        self.backend = backend(settings)
        # Local runs are visible: unfinished ones count as active, recent ones against the
        # cooldown and budget. Argo's are not; its template's per-model mutex queues them.
        self.runs = RunStore(settings.runs) if isinstance(self.backend, LocalExecutor) else None
        self.store = DecisionStore(settings.db_path)
        self.waiting = WaitingStore(settings.runs)
        self.producer = EventProducer(settings)
        self.consumer = EventConsumer(
            settings,
            DriftEvent,
            settings.trigger_group,
            dlq=self.producer,
            max_records=settings.trigger_batch_max,
            linger_s=settings.trigger_linger_s,
        )
        self.topic = self.consumer.topic
        self._retry_at: dict[str, float] = {}
        self._waiting_models: set[str] = set()
        self._snapshot: dict[str, list[RunRecord]] = {}

    def start(self) -> None:
        """Resume what a previous process left: runs whose driver died, decisions not yet
        submitted or published; then read on from the recorded offsets."""
        self.recover()
        self.release()
        pending = self.store.pending()
        if pending:
            log.info("submitting %d run(s) decided before a restart", len(pending))
        self.work_outbox()
        offsets = self.store.offsets(self.topic)
        self.consumer.assign_from(offsets)
        log.info("reading %s from %s", self.topic, offsets or "the beginning")

    def recover(self) -> None:
        """Start, resume or fail the local executor's runs that have no live driver."""
        if not isinstance(self.backend, LocalExecutor):
            return  # Argo's controller owns its workflows
        try:
            touched = self.backend.recover()
        except Exception as exc:  # Ray is away: deciding goes on, the next pass retries
            log.warning("could not check for runs without a live driver: %s", exc)
            return
        if touched:
            log.info("runs started, resumed or failed for want of a driver: %s", touched)
            self._snapshot = {}

    # -- deciding ---------------------------------------------------------------------------
    def handle(self, batch: Batch[DriftEvent]) -> None:
        now = self.clock()
        self._snapshot = {}
        events = [r.event for r in batch]
        for event in events:
            self.metrics.events.labels(event.model_name, event.kind).inc()
        verdicts = [e for e in events if e.kind in ACTED_ON]
        drifts = [e for e in events if e.kind not in ACTED_ON]
        decided, duplicates = self.store.record(
            self.topic, drifts, batch.next_offsets, lambda db, e: self._decide(db, e, now), now,
            verdicts=verdicts,
        )  # fmt: skip
        self.metrics.duplicates.inc(duplicates)
        for event, decision in decided:
            self.metrics.decisions.labels(event.model_name, decision.outcome, decision.reason).inc()
            log.info(
                "%s %s %s (%s): %s",
                decision.outcome,
                event.model_name,
                event.kind,
                event.event_id,
                decision.message,
            )
        self._mirror_waiting()
        self.work_outbox()

    def release(self) -> None:
        """Decide every held model's latest event again: past ``max_wait`` it is submitted
        (or skipped, if a run, the cooldown or the budget now stands in the way)."""
        now = self.clock()
        self._snapshot = {}
        for held in self.store.held():
            resolved = self.store.resolve(held.model, lambda db, e: self._decide(db, e, now), now)
            if resolved is not None and resolved[1].outcome != "wait":
                event, decision = resolved
                self.metrics.decisions.labels(
                    event.model_name, decision.outcome, decision.reason
                ).inc()
                log.info(
                    "%s %s %s (%s), held since %s: %s",
                    decision.outcome,
                    event.model_name,
                    event.kind,
                    event.event_id,
                    f"{held.since:%Y-%m-%d %H:%M:%S}",
                    decision.message,
                )
        self._mirror_waiting()

    def _mirror_waiting(self) -> None:
        """Rewrite the waiting records ``driftloop runs`` shows from the decision store."""
        try:
            held = self.store.held()
            self.waiting.keep_only({h.model for h in held})
            for h in held:
                record = self._waiting_record(h)
                if record is not None:
                    self.waiting.put(record)
            models = {h.model for h in held}
            for model in set(self._waiting_models) - models:
                self.metrics.waiting.labels(model).set(0)
            for model in models:
                self.metrics.waiting.labels(model).set(1)
            self._waiting_models = models
        except OSError as exc:  # the runs directory is away: the next pass writes them
            log.warning("waiting records not written: %s", exc)

    def _waiting_record(self, held: Held) -> Waiting | None:
        try:
            policy = self.policies.get(held.model)
        except PolicyError:
            return None
        found = held.event.evidence
        if policy is None or found is None:
            return None
        return Waiting(
            model=held.model,
            run_id=held.run_id,
            trigger_event_id=held.event.event_id,
            since=held.since,
            until=held.since + policy.evidence.max_wait,
            change_point=held.event.change_point or found.since,
            labelled_rows=found.labelled_rows,
            positives=found.positives,
            min_labelled_rows=policy.evidence.min_labelled_rows,
            min_positives=policy.evidence.min_positives,
        )

    def _decide(
        self, db: sqlite3.Connection, event: DriftEvent, now: datetime
    ) -> tuple[Decision, str, dict[str, str]]:
        run_id = run_id_for_event(event.event_id)
        try:
            policy = self.policies.get(event.model_name)
        except PolicyError as exc:
            self.metrics.policy_errors.set(self.policies.errors)
            return Decision("skip", "policy_error", str(exc)[:1000]), run_id, {}
        self.metrics.policy_errors.set(self.policies.errors)
        history = ModelHistory()
        if policy is not None:
            history = self._history(db, event, horizon(now, policy.cooldown))
        decision = decide(event, policy, history, now)
        if policy is None or decision.outcome != "submit":
            return decision, run_id, {}
        return decision, run_id, parameters_for(event, policy)

    def _history(self, db: sqlite3.Connection, event: DriftEvent, since: datetime) -> ModelHistory:
        pending, submitted, window_run = self.store.history(db, event, since)
        waiting_since = self.store.waiting_since(db, event.model_name)
        runs = None
        if self.runs is not None:
            if event.model_name not in self._snapshot:  # read once per batch and model
                self._snapshot[event.model_name] = self.runs.all(event.model_name)
            runs = self._snapshot[event.model_name]
        history = merge_history(pending, submitted, window_run, runs, since, waiting_since)
        rolled = self.store.rollbacks(event.model_name, db)
        last = max(rolled.values(), default=None)
        return replace(history, rolled_back=frozenset(rolled), last_rollback=last)

    # -- the outbox -------------------------------------------------------------------------
    def work_outbox(self) -> None:
        """Submit decided runs (each under its event's run id), then publish the workflow
        events of every decision not yet acknowledged, and act on shadow and canary verdicts
        and rollbacks.
        Failures are retried later."""
        self._act_on_verdicts()
        for entry in self.store.pending():
            if time.monotonic() >= self._retry_at.get(entry.event_id, 0.0):
                self._submit(entry)
        self.metrics.pending.set(len(self.store.pending()))
        self._publish(self.store.unpublished())

    def _act_on_verdicts(self) -> None:
        for event, attempts in self.store.verdicts_to_act():
            if time.monotonic() < self._retry_at.get(event.event_id, 0.0):
                continue
            try:
                acted = self._act(event)
            except PolicyError as exc:
                acted = Acted("skipped", f"policy_error: {exc}")
            except Exception as exc:  # git or the model store away: the next pass retries
                self.store.mark_act_failed(event.event_id, f"{type(exc).__name__}: {exc}")
                wait = min(2.0 ** (attempts + 1), self.settings.trigger_retry_max_s)
                self._retry_at[event.event_id] = time.monotonic() + wait
                log.warning("acting on %s %s failed (attempt %d), again in %.0f s: %s",
                            event.kind, event.event_id, attempts + 1, wait, exc)  # fmt: skip
                continue
            self.store.mark_acted(event.event_id, acted.outcome, acted.detail, acted.commit,
                                  utcnow())  # fmt: skip
            self._retry_at.pop(event.event_id, None)
            v = event.live_verdict
            if v is None:
                r = event.regression
                assert r is not None
                self.metrics.rollbacks.labels(event.model_name, acted.outcome).inc()
                log.info("rollback %s: %s %s regressed against %s (evaluation %d, %d rows, %d"
                         " positives): %s %s", event.event_id, event.model_name,
                         event.model_version, r.previous_version, r.evaluation, r.rows,
                         r.positives, acted.outcome, acted.detail)  # fmt: skip
                continue
            counter = self.metrics.shadow_actions if event.shadow else self.metrics.canary_actions
            counter.labels(event.model_name, v.verdict, acted.outcome).inc()
            log.info("%s %s: %s %s %s (asked to %s on %d labelled rows, %d positives): %s %s",
                     event.kind, event.event_id, event.model_name, v.version, v.verdict,
                     v.action, v.rows, v.positives, acted.outcome, acted.detail)  # fmt: skip

    def _act(self, event: DriftEvent) -> Acted:
        """The git change a shadow or canary verdict or a rollback asks for, made or
        declined."""
        policy = self.policies.get(event.model_name)
        rolled = self.store.rollbacks(event.model_name)
        last = max(rolled.values(), default=None)
        now = self.clock()
        if event.kind == "rollback":
            return act_on_rollback(self.settings, event, policy, last, now)
        hold = None
        if policy is not None and last is not None and now < last + policy.rollback.cooldown:
            hold = (f"cooling down after the rollback of {last:%Y-%m-%d %H:%M:%S}: no promotion"
                    f" until {last + policy.rollback.cooldown:%Y-%m-%d %H:%M:%S}")  # fmt: skip
        return act(self.settings, event, policy, hold)

    def _submit(self, entry: Recorded) -> None:
        self._fault("before_submit")
        try:
            submission = self.backend.submit(entry.parameters, entry.run_id)
        except Exception as exc:
            self.store.mark_failed_attempt(entry.event_id, f"{type(exc).__name__}: {exc}")
            self.metrics.submit_errors.labels(entry.model).inc()
            wait = min(2.0 ** (entry.attempts + 1), self.settings.trigger_retry_max_s)
            self._retry_at[entry.event_id] = time.monotonic() + wait
            log.warning(
                "submitting %s failed (attempt %d), again in %.0f s: %s",
                entry.run_id,
                entry.attempts + 1,
                wait,
                exc,
            )
            return
        self._fault("after_submit")
        self.store.mark_submitted(entry.event_id, submission.created, submission.backend, utcnow())
        self._retry_at.pop(entry.event_id, None)
        self._snapshot.pop(entry.model, None)
        self.metrics.submissions.labels(
            entry.model, submission.backend, str(submission.created).lower()
        ).inc()
        verb = "submitted" if submission.created else "was already submitted:"
        log.info("%s %s run %s (%s)", verb, entry.model, entry.run_id, submission.backend)

    def _publish(self, entries: list[Recorded]) -> None:
        if not entries:
            return
        try:
            futures = [(e, self.producer.send(self._workflow_event(e))) for e in entries]
            for _, future in futures:
                future.get()
        except Exception as exc:  # the broker is away: the next pass publishes them
            log.warning("workflow events not published yet (%d): %s", len(entries), exc)
            return
        self.store.mark_published([e.event_id for e, _ in futures])
        for entry, _ in futures:
            self.metrics.published.labels(_phase(entry)).inc()

    @staticmethod
    def _workflow_event(entry: Recorded) -> WorkflowEvent:
        # A submitted event says what the local executor's own does (same id, same text),
        # so the two are one event to a consumer that deduplicates by id.
        # A waiting event's message gives the counts and the minimums (the decision detail).
        message = f"reason: {entry.kind}" if entry.outcome == "submit" else entry.message
        return WorkflowEvent(
            run_id=entry.run_id,
            workflow=WORKFLOW,
            model_name=entry.model,
            phase=_phase(entry),
            trigger_event_id=entry.event_id,
            message=message[:2000],
        )

    def _fault(self, point: str) -> None:
        if self.settings.trigger_kill_at == point:
            log.warning("trigger_kill_at=%s: killing this process (a crash-safety test)", point)
            logging.shutdown()
            os.kill(os.getpid(), signal.SIGKILL)

    # -- running ----------------------------------------------------------------------------
    def run(self, stop: threading.Event, exit_when_idle_s: float | None = None) -> None:
        server = serve_metrics(
            self.settings, self.settings.trigger_metrics_port, self.metrics.registry
        )
        log.info("metrics on %s", server.url)
        try:
            self.start()
            idle_since = time.monotonic()
            next_lag = next_outbox = 0.0
            next_recover = time.monotonic() + self.settings.trigger_recover_s
            while not stop.is_set():
                result = self.consumer.poll_batch(self.handle, timeout_s=0.5)
                now = time.monotonic()
                if result.received:
                    idle_since = now
                elif exit_when_idle_s is not None and now - idle_since > exit_when_idle_s:
                    break
                if not result.received and now >= next_outbox:  # retries, late publishes
                    self.work_outbox()
                    next_outbox = now + 1
                if now >= next_recover:  # drivers that died while this process runs
                    self.recover()
                    self.release()  # held events past max_wait, with or without new events
                    next_recover = time.monotonic() + self.settings.trigger_recover_s
                if result.received or now >= next_lag:
                    self.metrics.lag.set(self.consumer.lag())
                    next_lag = now + 5
            left = len(self.store.pending())
            if left:
                log.warning(
                    "%d decided run(s) not submitted yet; the next start submits them", left
                )
        finally:
            server.shutdown()

    def close(self) -> None:
        self.consumer.close()
        self.producer.close()
        self.store.close()


def _phase(entry: Recorded) -> Literal["submitted", "waiting", "skipped"]:
    if entry.outcome == "submit":
        return "submitted"
    return "waiting" if entry.outcome == "wait" else "skipped"
