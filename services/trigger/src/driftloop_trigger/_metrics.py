"""The trigger's Prometheus metrics."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge


@dataclass(frozen=True)
class TriggerMetrics:
    registry: CollectorRegistry
    events: Counter
    duplicates: Counter
    decisions: Counter
    submissions: Counter
    submit_errors: Counter
    published: Counter
    pending: Gauge
    waiting: Gauge
    policy_errors: Gauge
    lag: Gauge
    shadow_actions: Counter
    canary_actions: Counter
    rollbacks: Counter

    @classmethod
    def create(cls) -> TriggerMetrics:
        r = CollectorRegistry()
        return cls(
            registry=r,
            events=Counter(
                "driftloop_trigger_events", "Drift events seen", ["model", "kind"], registry=r
            ),
            duplicates=Counter(
                "driftloop_trigger_duplicate_events",
                "Events whose id was decided before (redelivered or republished)",
                registry=r,
            ),
            decisions=Counter(
                "driftloop_trigger_decisions",
                "Decisions recorded, by outcome and reason",
                ["model", "outcome", "reason"],
                registry=r,
            ),
            submissions=Counter(
                "driftloop_trigger_submissions",
                "Runs handed to the workflow backend (created=false: it had them already)",
                ["model", "backend", "created"],
                registry=r,
            ),
            submit_errors=Counter(
                "driftloop_trigger_submit_errors",
                "Failed submission attempts (retried with backoff)",
                ["model"],
                registry=r,
            ),
            published=Counter(
                "driftloop_trigger_workflow_events",
                "Workflow events published",
                ["phase"],
                registry=r,
            ),
            pending=Gauge(
                "driftloop_trigger_pending_submissions",
                "Runs decided but not yet accepted by the backend",
                registry=r,
            ),
            waiting=Gauge(
                "driftloop_trigger_waiting",
                "1 while a model's severe event is held for labelled evidence",
                ["model"],
                registry=r,
            ),
            policy_errors=Gauge(
                "driftloop_trigger_policy_errors",
                "Policy files that failed to load since start",
                registry=r,
            ),
            lag=Gauge(
                "driftloop_trigger_consumer_lag", "Records behind the topic's end", registry=r
            ),
            shadow_actions=Counter(
                "driftloop_trigger_shadow_actions",
                "Shadow verdicts acted on, by verdict and outcome (promoted, removed, kept,"
                " skipped, refused)",
                ["model", "verdict", "outcome"],
                registry=r,
            ),
            canary_actions=Counter(
                "driftloop_trigger_canary_actions",
                "Canary verdicts acted on, by verdict and outcome (promoted, removed, kept,"
                " skipped, refused)",
                ["model", "verdict", "outcome"],
                registry=r,
            ),
            rollbacks=Counter(
                "driftloop_trigger_rollbacks",
                "Rollback events acted on, by outcome (rolled_back: a revert committed or"
                " proposed; skipped, refused)",
                ["model", "outcome"],
                registry=r,
            ),
        )
