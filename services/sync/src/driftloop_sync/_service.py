"""The reconcile loop: make Ray Serve run what the watched branch declares.

Each interval: read the branch head; compose and check its serve configs; compare with
the live applications; apply (``PUT /api/serve/applications/`` with the cluster token)
when they differ — a new commit, or a hand change to the live config (self-heal) — and
wait until every application is RUNNING and answers with the model version it declares.

No pass ever raises. What fails is recorded in the state file with its error, in one of
two kinds:

- the commit is wrong (YAML that does not parse, a config Ray's schema refuses, a model
  missing from the store, a digest that differs from the file's bytes, a deploy that does
  not become healthy, a model its replicas refuse): its sha is recorded as failed and not
  tried again until the branch moves; what served before keeps serving;
- the machine is (the dashboard or the git remote unreachable, the store unreadable, or
  anything unforeseen): recorded as ``last_error`` with ``last_error_transient`` and
  tried again next interval.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from driftloop.events import utcnow
from driftloop.gitops import SyncState, read_state, write_state
from driftloop.models import ModelStore
from driftloop.raycluster import RayApiError, dashboard_request, declared_applications
from driftloop_sync._compose import (
    InvalidConfig,
    check_models,
    compose,
    declared_models,
    differs,
)
from driftloop_sync._metrics import SyncMetrics
from driftloop_sync._served import NotServed, wait_served
from driftloop_sync._settings import SyncSettings
from driftloop_sync._source import Source

log = logging.getLogger(__name__)
PATH = "/api/serve/applications/"


class NotHealthy(RuntimeError):
    """The applied applications failed, or were not RUNNING in time."""


class SyncService:
    def __init__(self, settings: SyncSettings, metrics: SyncMetrics | None = None) -> None:
        self.settings = settings
        self.source = Source(
            settings.watched_repo, settings.watched_branch, settings.sync_apps_dir,
            settings.state_dir,
        )  # fmt: skip
        self.store = ModelStore.from_settings(settings)
        self.metrics = metrics or SyncMetrics()
        try:
            self.state = read_state(settings) or SyncState()
        except (OSError, ValueError) as exc:  # a damaged state file is not worth a crash loop
            log.warning("starting from an empty state: %s", exc)
            self.state = SyncState()
        self.state.repo, self.state.branch = settings.watched_repo, settings.watched_branch

    # -- one pass ---------------------------------------------------------------------------
    def reconcile(self) -> SyncState:
        """One pass; every failure is recorded in the state, none is raised."""
        self.state.last_check = utcnow()
        try:
            return self._reconcile()
        except Exception as exc:  # unforeseen: recorded, tried again next interval
            log.exception("sync pass failed")
            return self._transient(f"sync pass failed: {type(exc).__name__}: {exc}")

    def _reconcile(self) -> SyncState:
        state = self.state
        try:
            sha = self.source.head()
        except Exception as exc:
            return self._transient(f"cannot read {self.settings.watched_repo}: {exc}")
        state.git_sha = sha
        self.metrics.git_sha(sha)
        if sha == state.failed_sha:
            self._save()
            return state  # the error is recorded; a new commit is needed
        fresh = sha != state.synced_sha  # a commit to apply: its model files are re-hashed
        try:
            desired = compose(self.source.serve_configs(sha))
            check_models(desired, self.store, rehash=fresh)
        except InvalidConfig as exc:
            return self._failed(str(exc), sha)
        try:
            live = self._live()
        except (RayApiError, OSError) as exc:
            return self._transient(f"cannot read Serve at {self.settings.dashboard_url}: {exc}")
        if not fresh and not differs(desired, live):
            state.applications = {n: a.get("status", "") for n, a in live.items()}
            state.last_error, state.last_error_transient = None, False
            self._save()
            return state
        if not fresh:  # a hand change to put back: the files are checked as for a commit
            try:
                check_models(desired, self.store, rehash=True)
            except InvalidConfig as exc:
                return self._failed(str(exc), sha)
        return self._apply(sha, desired)

    def _apply(self, sha: str, desired: dict[str, Any]) -> SyncState:
        state = self.state
        healing = sha == state.synced_sha
        started = time.monotonic()
        try:
            dashboard_request(self.settings, "PUT", PATH, desired, timeout_s=60)
            statuses = self._wait_running({a["name"] for a in desired["applications"]})
            left = self.settings.sync_ready_timeout_s - (time.monotonic() - started)
            wait_served(
                self.settings.serve_url, declared_models(desired), max(left, 10.0),
                self.settings.sync_poll_s,
            )  # fmt: skip
        except RayApiError as exc:
            if exc.status >= 500:  # the dashboard's trouble, not the config's
                return self._transient(f"apply of {sha[:12]} failed: {exc}")
            return self._failed(f"apply of {sha[:12]} refused: {exc}", sha)
        except (NotHealthy, NotServed) as exc:
            return self._failed(f"apply of {sha[:12]} failed: {exc}", sha)
        except OSError as exc:
            return self._transient(f"apply of {sha[:12]} interrupted: {exc}")
        if healing:
            state.heals += 1
            self.metrics.heals.inc()
            log.warning("live Serve config differed from %s; put back", sha[:12])
        state.synced_sha, state.failed_sha = sha, None
        state.last_error, state.last_error_at, state.last_error_transient = None, None, False
        state.last_apply, state.applications = utcnow(), statuses
        self.metrics.applied(time.monotonic() - started)
        log.info("synced %s in %.1f s: %s", sha[:12], time.monotonic() - started, statuses)
        self._save()
        return state

    def _live(self) -> dict[str, dict[str, Any]]:
        """The live applications this service owns. One deployed with ``serve.run`` is not
        drift: an apply leaves it alone, so treating it as drift would put back the same
        config on every pass."""
        out: dict[str, dict[str, Any]] = {}
        for name, app in declared_applications(self.settings).items():
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
                raise NotHealthy(f"applications failed: {messages}")
            if all(s == "RUNNING" for s in statuses.values()):
                return statuses
            time.sleep(self.settings.sync_poll_s)
        raise NotHealthy(f"not RUNNING after {self.settings.sync_ready_timeout_s:g} s: {statuses}")

    def _failed(self, message: str, sha: str) -> SyncState:
        """The commit is wrong: recorded, and not tried again until the branch moves."""
        self.state.failed_sha = sha
        self.metrics.errors.inc()
        return self._error(message, transient=False)

    def _transient(self, message: str) -> SyncState:
        """The environment failed: recorded, tried again next interval."""
        self.metrics.transient_errors.inc()
        return self._error(message, transient=True)

    def _error(self, message: str, *, transient: bool) -> SyncState:
        log.error("%s", message)
        self.state.last_error, self.state.last_error_transient = message, transient
        self.state.last_error_at = utcnow()
        self._save()
        return self.state

    def _save(self) -> None:
        write_state(self.settings, self.state)

    # -- the loop ---------------------------------------------------------------------------
    def run(self, once: bool = False) -> None:
        while True:
            began = time.monotonic()
            try:
                self.reconcile()
            except Exception:  # e.g. the state file cannot be written: keep watching
                log.exception("sync pass failed")
            if once:
                return
            time.sleep(max(0.0, self.settings.sync_interval_s - (time.monotonic() - began)))
