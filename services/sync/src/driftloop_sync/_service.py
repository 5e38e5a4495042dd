"""The reconcile loop: make Ray Serve run what the watched branch declares.

Each interval: read the branch head; compose and check its serve configs; compare with
the live applications; apply (``PUT /api/serve/applications/`` with the cluster token)
when they differ — a new commit, or a hand change to the live config (self-heal) — and
wait until every application is RUNNING. A commit that fails (invalid config, unknown
model, wrong digest, a deploy that does not become healthy) is recorded with its error
and not retried until the branch moves; what served before keeps serving.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from driftloop.events import utcnow
from driftloop.gitops import SyncState, read_state, write_state
from driftloop.models import ModelStore
from driftloop.raycluster import RayApiError, dashboard_request
from driftloop_sync._compose import InvalidConfig, check_models, compose, differs
from driftloop_sync._metrics import SyncMetrics
from driftloop_sync._settings import SyncSettings
from driftloop_sync._source import Source

log = logging.getLogger(__name__)
PATH = "/api/serve/applications/"


class SyncService:
    def __init__(self, settings: SyncSettings, metrics: SyncMetrics | None = None) -> None:
        self.settings = settings
        self.source = Source(
            settings.watched_repo, settings.watched_branch, settings.sync_apps_dir,
            settings.state_dir,
        )  # fmt: skip
        self.store = ModelStore.from_settings(settings)
        self.metrics = metrics or SyncMetrics()
        self.state = read_state(settings) or SyncState()
        self.state.repo, self.state.branch = settings.watched_repo, settings.watched_branch

    # -- one pass ---------------------------------------------------------------------------
    def reconcile(self) -> SyncState:
        state = self.state
        state.last_check = utcnow()
        try:
            sha = self.source.head()
        except Exception as exc:
            return self._error(f"cannot read {self.settings.watched_repo}: {exc}", None)
        state.git_sha = sha
        self.metrics.git_sha(sha)
        if sha == state.failed_sha:
            self._save()
            return state  # the error is recorded; a new commit is needed
        try:
            desired = compose(self.source.serve_configs(sha))
            check_models(desired, self.store)
        except InvalidConfig as exc:
            return self._error(str(exc), sha)
        live = self._live()
        if sha == state.synced_sha and not differs(desired, live):
            state.applications = {n: a.get("status", "") for n, a in live.items()}
            self._save()
            return state
        healing = sha == state.synced_sha
        started = time.monotonic()
        try:
            dashboard_request(self.settings, "PUT", PATH, desired, timeout_s=60)
            statuses = self._wait_running({a["name"] for a in desired["applications"]})
        except (RayApiError, OSError, TimeoutError, RuntimeError) as exc:
            return self._error(f"apply of {sha[:12]} failed: {exc}", sha)
        if healing:
            state.heals += 1
            self.metrics.heals.inc()
            log.warning("live Serve config differed from %s; put back", sha[:12])
        state.synced_sha, state.failed_sha, state.last_error = sha, None, None
        state.last_apply, state.applications = utcnow(), statuses
        self.metrics.applied(time.monotonic() - started)
        log.info("synced %s in %.1f s: %s", sha[:12], time.monotonic() - started, statuses)
        self._save()
        return state

    def _live(self) -> dict[str, dict[str, Any]]:
        answer = dashboard_request(self.settings, "GET", PATH) or {}
        out: dict[str, dict[str, Any]] = {}
        for name, app in (answer.get("applications") or {}).items():
            config = dict(app.get("deployed_app_config") or {})
            config["status"] = app.get("status", "")
            out[name] = config
        return out

    def _wait_running(self, names: set[str]) -> dict[str, str]:
        deadline = time.monotonic() + self.settings.sync_ready_timeout_s
        statuses: dict[str, str] = {}
        while time.monotonic() < deadline:
            answer = dashboard_request(self.settings, "GET", PATH) or {}
            apps = answer.get("applications") or {}
            statuses = {n: str(apps.get(n, {}).get("status", "MISSING")) for n in names}
            failed = {n: s for n, s in statuses.items() if s in {"DEPLOY_FAILED", "UNHEALTHY"}}
            if failed:
                messages = {n: apps.get(n, {}).get("message", "") for n in failed}
                raise RuntimeError(f"applications failed: {messages}")
            if all(s == "RUNNING" for s in statuses.values()):
                return statuses
            time.sleep(1)
        raise TimeoutError(
            f"not RUNNING after {self.settings.sync_ready_timeout_s:g} s: {statuses}"
        )

    def _error(self, message: str, sha: str | None) -> SyncState:
        log.error("%s", message)
        self.state.last_error = message
        if sha is not None:
            self.state.failed_sha = sha
        self.metrics.errors.inc()
        self._save()
        return self.state

    def _save(self) -> None:
        write_state(self.settings, self.state)

    # -- the loop ---------------------------------------------------------------------------
    def run(self, once: bool = False) -> None:
        while True:
            began = time.monotonic()
            self.reconcile()
            if once:
                return
            time.sleep(max(0.0, self.settings.sync_interval_s - (time.monotonic() - began)))
