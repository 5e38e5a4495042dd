"""The sync service when things go wrong, on a real git repository and the real Ray Serve:
an unreachable dashboard (the process keeps running and says why), a malformed
serve.yaml, a model file corrupted in the store (refused before apply), a model the
replicas refuse (caught after apply), each recorded while the old model keeps serving and
shown by ``driftloop sync status``; a second model added without taking the first down;
and a commit applied by ``driftloop-sync run`` as a process (its timing at the shipped
interval is ``bench/sync.py``'s).

Run under the stack lock: an apply replaces every declaratively deployed Serve
application; the teardown deletes only the applications these tests deployed.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from driftloop_sync import SyncService, SyncSettings

from driftloop.gitops import promote, read_state
from driftloop.models import ModelStore
from driftloop.raycluster import dashboard_request
from tests.integration import serving_support as support
from tests.integration import sync_support as sync

# about 3x what it needs: a sync world (~10 s) and a test of several applies (~30 s)
pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[2]
BIN = sync.BIN


_env = sync.process_env


_status = sync.status


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def _declared_live(settings: Any, app: str = "fraud") -> str:
    live = dashboard_request(settings, "GET", "/api/serve/applications/")
    config = live["applications"][app]["deployed_app_config"]["deployments"][0]["user_config"]
    return str(config["model_uri"])


# -- no Serve needed --------------------------------------------------------------------------
def test_an_unreachable_dashboard_is_recorded_and_the_service_keeps_running(tmp_path):
    repo = tmp_path / "deploy-repo"
    (repo / "deploy/apps/fraud").mkdir(parents=True)
    shutil.copy(ROOT / sync.SERVE_YAML, repo / sync.SERVE_YAML)
    sync.git(repo, "init", "--quiet", "--initial-branch", "main")
    sync.git(repo, "add", ".")
    sync.git(repo, "commit", "--quiet", "-m", "deploy: fraud")
    settings = SyncSettings(
        state_dir=tmp_path / "state", git_repo=str(repo), deploy_dir=repo / "deploy",
        model_store_uri=str(tmp_path / "models"),
    )  # fmt: skip
    closed = f"http://127.0.0.1:{_closed_port()}"
    log = (tmp_path / "sync.log").open("w")
    env = _env(settings, DRIFTLOOP_RAY_DASHBOARD_URL=closed, DRIFTLOOP_SYNC_INTERVAL_S="0.5")
    process = subprocess.Popen(
        [str(BIN / "driftloop-sync"), "run"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 60
        while (tmp_path / "sync.log").read_text().count("cannot read Serve") < 3:
            assert process.poll() is None, (tmp_path / "sync.log").read_text()
            assert time.monotonic() < deadline, (tmp_path / "sync.log").read_text()
            time.sleep(0.2)
        assert process.poll() is None  # still running after three failed passes
        state = read_state(settings)
        assert state is not None and state.git_sha == sync.git(repo, "rev-parse", "main")
        assert state.synced_sha is None and state.failed_sha is None  # retried, not given up
        assert state.last_error_transient and closed in (state.last_error or "")
        assert "Connection refused" in (state.last_error or ""), state.last_error
        status = _status(settings, DRIFTLOOP_RAY_DASHBOARD_URL=closed)
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()
    assert status["last_error"] == state.last_error and status["retrying"] is True
    assert status["in_sync"] is False and status["synced_sha"] is None
    assert status["git_sha"] == state.git_sha and "error" in status["applications"]
    print(f"\nsync status with the dashboard unreachable: {json.dumps(status, indent=1)}")


# -- on the real Serve ------------------------------------------------------------------------
def _own(applications: dict[str, str]) -> dict[str, str]:
    """The statuses of this module's applications: the session's shared serving app
    (``fraud-it-*``, deployed with serve.run) may be live beside them."""
    return {k: v for k, v in applications.items() if not k.startswith("fraud-it-")}


@pytest.fixture(scope="module")
def world(settings, tmp_path_factory):
    root = tmp_path_factory.mktemp("sync-failures")
    synced, spec, versions, repo = sync.sync_world(settings, root, (31, 32, 33))
    yield synced, spec, versions, repo, root
    sync.remove_apps(synced, "fraud", "fraud2")


def test_failed_commits_are_recorded_while_the_old_model_serves(world):
    settings, _, (v1, v2, v3), repo, root = world
    service = SyncService(settings)
    good = promote(settings, "fraud", v1.version, reason="first model").commit
    state = service.reconcile()
    assert state.synced_sha == good and state.last_error is None, state.last_error
    sync.wait_model(settings, v1.version)
    status = _status(settings)
    assert status["git_sha"] == status["synced_sha"] == good and status["in_sync"] is True
    assert _own(status["applications"]) == {"fraud": "RUNNING"}
    assert status["last_error"] is None and status["failed_sha"] is None
    assert status["retrying"] is False

    # A serve.yaml that is not YAML: recorded as failed, once; v1 serves on.
    path = repo / sync.SERVE_YAML
    path.write_text(path.read_text() + "bad: [unclosed\n")
    sync.git(repo, "commit", "--quiet", "-am", "a broken serve.yaml")
    broken = sync.git(repo, "rev-parse", "main")
    state = service.reconcile()
    assert state.failed_sha == broken and "not valid YAML" in (state.last_error or "")
    errors = service.metrics.errors._value.get()
    service.reconcile()
    assert service.metrics.errors._value.get() == errors  # not tried again
    assert sync.served_model(settings) == v1.version
    status = _status(settings)
    assert status["git_sha"] == broken and status["synced_sha"] == good
    assert status["in_sync"] is False and status["failed_sha"] == broken
    assert "not valid YAML" in status["last_error"] and status["retrying"] is False
    assert _own(status["applications"]) == {"fraud": "RUNNING"}
    sync.git(repo, "revert", "--no-edit", broken)

    # v2's model file damaged in the store (its metadata and the digest git declares are
    # intact): refused before anything is applied, v1 keeps serving.
    model_file = Path(settings.model_store) / "fraud" / v2.version / "model.json"
    pristine = model_file.read_bytes()
    model_file.write_bytes(pristine.replace(b"}", b" }", 1))
    corrupt = promote(settings, "fraud", v2.version, reason="a damaged file").commit
    state = service.reconcile()
    assert state.failed_sha == corrupt and "sha256 mismatch" in (state.last_error or "")
    assert _declared_live(settings) == f"models:/fraud/{v1.version}"  # nothing was applied
    assert sync.served_model(settings) == v1.version
    model_file.write_bytes(pristine)
    sync.git(repo, "revert", "--no-edit", str(corrupt))

    # v3 intact where the sync service looks but damaged where the replicas load it: Serve
    # applies it and stays RUNNING, the replica refuses it, and the sync service, asking
    # the application which version it serves, records the commit as failed.
    sync_store = root / "sync-view-of-models"
    shutil.copytree(settings.model_store, sync_store)
    replicas_file = Path(settings.model_store) / "fraud" / v3.version / "model.json"
    replicas_file.write_bytes(replicas_file.read_bytes().replace(b"}", b" }", 1))
    refused = promote(settings, "fraud", v3.version, reason="refused by replicas").commit
    elsewhere = SyncService(settings.model_copy(update={"model_store_uri": str(sync_store)}))
    state = elsewhere.reconcile()
    assert state.failed_sha == refused, state.last_error
    assert "refused models:/fraud/" in (state.last_error or "") and "DigestMismatch" in (
        state.last_error or ""
    )
    assert sync.served_model(settings) == v1.version
    assert _own(_status(settings)["applications"]) == {"fraud": "RUNNING"}  # Serve saw no failure

    # A good commit after all that applies.
    sync.git(repo, "revert", "--no-edit", str(refused))
    head = sync.git(repo, "rev-parse", "main")
    state = service.reconcile()
    assert state.synced_sha == head and state.last_error is None, state.last_error
    assert _declared_live(settings) == f"models:/fraud/{v1.version}"
    status = _status(settings)
    assert status["in_sync"] is True and status["last_error"] is None
    assert status["failed_sha"] is None


def _put_named(settings: Any, spec: Any, name: str, seed: int, lineage: Any) -> Any:
    """A version of model ``name`` (another model than fraud) in the test's store."""
    return ModelStore(settings.model_store).put(
        name, support.train_booster(spec, seed), filename="model.json", features=spec,
        lineage=lineage,
    )  # fmt: skip


def test_adding_a_second_model_keeps_the_first_one_serving(world):
    settings, spec, (v1, _, _), repo, _ = world
    service = SyncService(settings)
    promote(settings, "fraud", v1.version, reason="serve v1")  # a no-op if it serves already
    assert service.reconcile().last_error is None
    other = _put_named(settings, spec, "fraud2", seed=41, lineage=v1.metadata.lineage)
    text = (
        sync.serve_yaml(settings, "fraud2")
        .replace("model_uri: null", f"model_uri: models:/fraud2/{other.version}")
        .replace("model_digest: null", f"model_digest: {other.sha256}")
    )
    (repo / "deploy/apps/fraud2").mkdir()
    (repo / "deploy/apps/fraud2/serve.yaml").write_text(text)
    sync.git(repo, "add", "deploy/apps/fraud2/serve.yaml")
    sync.git(repo, "commit", "--quiet", "-m", "deploy: a second model")
    with support.Load(f"{settings.serve_url}/fraud/predict") as load:
        load.wait_for(v1.version, 10)
        state = service.reconcile()
        assert state.last_error is None, state.last_error
        load.wait_for(v1.version, load.count(v1.version) + 20)
    assert [a for a in load.answers if a.status != 200] == []
    assert {a.version for a in load.answers} == {v1.version}
    assert _own(state.applications) == {"fraud": "RUNNING", "fraud2": "RUNNING"}
    live = dashboard_request(settings, "GET", "/api/serve/applications/")["applications"]
    assert _own({n: a["status"] for n, a in live.items()}) == _own(state.applications)
    assert sync.served_model(settings, "fraud2") == other.version
    print(f"\nfirst app answered {len(load.answers)} times, all 200, while fraud2 was added")
    sync.git(repo, "rm", "--quiet", "-r", "deploy/apps/fraud2")
    sync.git(repo, "commit", "--quiet", "-m", "remove the second model")
    assert _own(service.reconcile().applications) == {"fraud": "RUNNING"}


def test_a_commit_is_applied_by_the_sync_process(world, tmp_path):
    """``driftloop-sync run`` as a process: a commit is applied, answered by the new
    version, recorded in the state file and logged with its apply time. (At the shipped
    interval, five commits at different points of it: ``bench/sync.py``.)"""
    settings, _, (v1, v2, _), repo, _ = world
    log_path = tmp_path / "sync.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [str(BIN / "driftloop-sync"), "run"],
            env=_env(settings, DRIFTLOOP_SYNC_INTERVAL_S="1"),
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            promote(settings, "fraud", v1.version, reason="start from v1")
            sync.wait_synced(settings, sync.git(repo, "rev-parse", "main"), process, log_path)
            sync.wait_model(settings, v1.version)
            committed = time.time()
            done = promote(settings, "fraud", v2.version, reason="measure")
            assert done.commit is not None
            sync.wait_model(settings, v2.version, timeout_s=180)
            answered = time.time()
            sync.wait_synced(settings, done.commit, process, log_path)
            state = read_state(settings)
            assert state is not None and state.last_apply is not None
            found = re.search(rf"synced {done.commit[:12]} in ([0-9.]+) s", log_path.read_text())
            assert found, log_path.read_text()
            apply = float(found.group(1))
            put = state.last_apply.timestamp() - apply  # the apply's start, to its 0.1 s
            assert committed - 0.1 <= put <= answered, (committed, put, answered)
        finally:
            process.terminate()
            process.wait(timeout=60)
