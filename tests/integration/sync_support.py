"""A deploy repository with one fraud app on the real Ray Serve, for the sync tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import yaml
from driftloop_sync import SyncSettings

from driftloop.gitops import Git, read_state
from driftloop.raycluster import dashboard_request
from tests.integration import serving_support as support

ROOT = Path(__file__).resolve().parents[2]
SERVE_YAML = "deploy/apps/fraud/serve.yaml"
APPLICATIONS = "/api/serve/applications/"
BIN = Path(sys.executable).parent


def git(repo: Path, *args: str) -> str:
    return Git(repo).run(*args).strip()


def serve_yaml(settings: Any, name: str = "fraud") -> str:
    """The committed serve.yaml pointed at this test's state, one replica needing no CPU
    (the tests share two cores with everything else), as application ``name`` at
    ``/<name>``."""
    document = yaml.safe_load((ROOT / SERVE_YAML).read_text())
    application = document["applications"][0]
    application["args"].update(support.serve_args(settings))
    application["name"], application["route_prefix"] = name, f"/{name}"
    deployment = application["deployments"][0]
    deployment["ray_actor_options"] = {"num_cpus": 0}
    deployment.pop("autoscaling_config")
    deployment["num_replicas"] = 1
    return yaml.safe_dump(document, sort_keys=False)


def sync_world(
    settings: Any, root: Path, seeds: tuple[int, ...]
) -> tuple[SyncSettings, Any, list[Any], Path]:
    """A feature repo and a model per seed under ``root``, a deploy repository whose main
    declares the fraud app with no model yet, and sync settings watching it: (settings,
    feature spec, stored versions, repository)."""
    state = support.feature_repo(settings, root, settings.topic_prefix)
    spec = support.fraud_features(state)
    versions = [support.put_model(state, spec, seed=s, threshold=0.5) for s in seeds]
    repo = root / "deploy-repo"
    (repo / "deploy/apps/fraud").mkdir(parents=True)
    (repo / SERVE_YAML).write_text(serve_yaml(state))
    git(repo, "init", "--quiet", "--initial-branch", "main")
    git(repo, "add", ".")
    git(repo, "commit", "--quiet", "-m", "deploy: fraud, no model yet")
    synced = SyncSettings(
        **{**state.model_dump(exclude={"git_repo", "deploy_dir"}),
           "git_repo": str(repo), "deploy_dir": repo / "deploy",
           "sync_metrics_port": 0, "sync_ready_timeout_s": 120, "sync_poll_s": 0.2},
    )  # fmt: skip
    return synced, spec, versions, repo


def served_model(settings: Any, app: str = "fraud") -> str | None:
    """The version the sync-deployed ``app`` serves (its key is the stack's)."""
    url = f"{settings.serve_url}/{app}/model"
    answer = httpx.get(url, headers=support.stack_headers(), timeout=10)
    version = answer.json().get("model_version") if answer.status_code == 200 else None
    return str(version) if version is not None else None


def wait_model(settings: Any, version: str, timeout_s: float = 60) -> float:
    """Seconds until ``version`` answers on /fraud/model."""
    started = time.monotonic()
    while served_model(settings) != version:
        assert time.monotonic() - started < timeout_s, f"{version} not serving after {timeout_s} s"
        time.sleep(0.1)
    return time.monotonic() - started


def remove_apps(settings: Any, *names: str) -> None:
    """Delete Serve applications ``names`` — the ones a test's sync service deployed — and
    no other.

    Ray's REST API has no per-application delete: a PUT replaces every application deployed
    through it (declaratively) and leaves those deployed with ``serve.run`` alone. So the
    other declarative applications are put back with their own live configs (unchanged,
    nothing restarts) and only ``names`` go. The sync service itself owns every declarative
    application while it runs (each apply is such a PUT), which is why its tests run under
    the stack lock."""
    live = dashboard_request(settings, "GET", APPLICATIONS) or {}
    keep = [
        app["deployed_app_config"]
        for name, app in (live.get("applications") or {}).items()
        if name not in names
        and app.get("source") == "declarative"
        and app.get("deployed_app_config")
    ]
    dashboard_request(settings, "PUT", APPLICATIONS, {"applications": keep}, timeout_s=60)
    deadline = time.monotonic() + 60
    while set(names) & set(
        (dashboard_request(settings, "GET", APPLICATIONS) or {}).get("applications") or {}
    ):
        assert time.monotonic() < deadline, f"{names} still deployed after 60 s"
        time.sleep(0.5)


def process_env(settings: Any, **extra: str) -> dict[str, str]:
    """The environment of a ``driftloop`` / ``driftloop-sync`` process on ``settings``'
    state, repository and model store."""
    return {
        **os.environ,
        "DRIFTLOOP_STATE_DIR": str(settings.state_dir),
        "DRIFTLOOP_GIT_REPO": str(settings.git_repo),
        "DRIFTLOOP_DEPLOY_DIR": str(settings.deploy_dir),
        "DRIFTLOOP_MODEL_STORE_URI": settings.model_store,
        "DRIFTLOOP_SYNC_METRICS_PORT": "0",
        **extra,
    }


def status(settings: Any, **extra: str) -> dict[str, Any]:
    """What ``driftloop sync status --json`` says about ``settings``' sync."""
    done = subprocess.run(
        [str(BIN / "driftloop"), "sync", "status", "--json"],
        env=process_env(settings, **extra), capture_output=True, text=True, timeout=120,
        check=True,
    )  # fmt: skip
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer


def wait_synced(
    settings: Any, sha: str, process: subprocess.Popen[bytes], log: Path, timeout_s: float = 180
) -> None:
    """Until the state file of a running ``driftloop-sync run`` says ``sha`` is synced."""
    deadline = time.monotonic() + timeout_s
    while (state := read_state(settings)) is None or state.synced_sha != sha:
        assert process.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)
