"""The sync service's Prometheus metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info


class SyncMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry or CollectorRegistry()
        self.applies = Counter("driftloop_sync_applies", "Configs applied to Ray Serve", registry=r)
        self.errors = Counter("driftloop_sync_errors", "Failed syncs (by commit)", registry=r)
        self.transient_errors = Counter(
            "driftloop_sync_transient_errors",
            "Passes that failed for the environment (dashboard, git remote, store); retried",
            registry=r,
        )
        self.heals = Counter("driftloop_sync_heals", "Hand changes put back", registry=r)
        self.apply_seconds = Histogram(
            "driftloop_sync_apply_seconds", "PUT until every application RUNNING", registry=r,
            buckets=(0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300),
        )  # fmt: skip
        self.last_success = Gauge(
            "driftloop_sync_last_success_timestamp_seconds", "When a sync last succeeded",
            registry=r,
        )  # fmt: skip
        self.revision = Info("driftloop_sync_git", "The watched branch's head", registry=r)

    def applied(self, seconds: float) -> None:
        self.applies.inc()
        self.apply_seconds.observe(seconds)
        self.last_success.set_to_current_time()

    def git_sha(self, sha: str) -> None:
        self.revision.info({"sha": sha})
