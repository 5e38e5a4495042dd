"""GitOps on one machine: promotions as commits in a real git repository, the sync service
applying them to the real Ray Serve, self-heal, a bad config refused while the old model
serves, rollback by revert, scaling by a commit under load."""

from __future__ import annotations

import pytest
import yaml
from driftloop_sync import SyncService

from driftloop.gitops import promote
from driftloop.raycluster import dashboard_request
from tests.integration import serving_support as support
from tests.integration import sync_support as sync

# about 3x what it needs: a sync world (~10 s) and a test of swaps under load (~26 s)
pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def world(settings, tmp_path_factory):
    root = tmp_path_factory.mktemp("sync")
    synced, _, versions, repo = sync.sync_world(settings, root, (11, 12))
    yield synced, versions, repo
    sync.remove_apps(synced, "fraud")


def test_git_is_the_record_of_what_serves(world):
    settings, (v1, v2), repo = world
    service = SyncService(settings)

    # Promotion 1 (merge policy): a commit on main; one reconcile later v1 answers.
    done = promote(settings, "fraud", v1.version, reason="first model")
    assert done.changed and sync.git(repo, "rev-parse", "main") == done.commit
    state = service.reconcile()
    assert state.synced_sha == done.commit and state.last_error is None, state
    sync.wait_model(settings, v1.version)

    # Promotion 2 under load: zero failed requests while v2 replaces v1 in place.
    with support.Load(f"{settings.serve_url}/fraud/predict") as load:
        load.wait_for(v1.version, 10)
        second = promote(settings, "fraud", v2.version, reason="drift")
        service.reconcile()
        load.wait_for(v2.version, 10)
    assert [a for a in load.answers if a.status != 200] == []

    # Self-heal: a hand change to the live config is put back by the next pass.
    live = dashboard_request(settings, "GET", "/api/serve/applications/")
    config = live["applications"]["fraud"]["deployed_app_config"]
    config["deployments"][0]["user_config"]["threshold"] = 0.99
    dashboard_request(settings, "PUT", "/api/serve/applications/",
                      {"http_options": {"host": "127.0.0.1", "port": 8000},
                       "applications": [config]})  # fmt: skip
    state = service.reconcile()
    assert state.heals == 1 and state.synced_sha == second.commit
    healed = dashboard_request(settings, "GET", "/api/serve/applications/")
    user_config = healed["applications"]["fraud"]["deployed_app_config"]["deployments"][0]
    assert user_config["user_config"]["threshold"] is None

    # A bad config (a digest that is not the model's) is refused; v2 keeps serving, and
    # the same commit is not retried.
    path = repo / "deploy/apps/fraud/serve.yaml"
    path.write_text(path.read_text().replace(v2.sha256, "0" * 64))
    sync.git(repo, "commit", "--quiet", "-am", "a wrong digest")
    bad = sync.git(repo, "rev-parse", "main")
    state = service.reconcile()
    assert state.failed_sha == bad and "git declares" in (state.last_error or "")
    assert state.synced_sha == second.commit and sync.served_model(settings) == v2.version
    errors = service.metrics.errors._value.get()
    service.reconcile()
    assert service.metrics.errors._value.get() == errors  # recorded once, not retried

    # Rollback is a revert: undo the bad commit and the second promotion; v1 serves again.
    sync.git(repo, "revert", "--no-edit", bad)
    assert second.commit is not None
    sync.git(repo, "revert", "--no-edit", second.commit)
    state = service.reconcile()
    assert state.last_error is None and state.synced_sha == sync.git(repo, "rev-parse", "main")
    sync.wait_model(settings, v1.version)


def test_an_application_deployed_with_serve_run_is_neither_drift_nor_touched(world):
    """The sync service owns what the REST API deploys; an application deployed beside it
    with ``serve.run`` (a trial, a test's own) is not drift to put back on every pass, and
    an apply of a new commit leaves it serving."""
    from ray import serve

    settings, (v1, v2), _ = world
    service = SyncService(settings)
    promote(settings, "fraud", v1.version, reason="serve v1")  # a no-op if it serves already
    service.reconcile()
    support.connect_ray(settings)
    name = support.app_name()
    support.deploy(name, support.serve_args(settings), support.user_config(v2))
    try:
        heals = service.reconcile().heals
        assert service.reconcile().heals == heals  # no heal: nothing of the sync's differs
        status = sync.status(settings)
        assert name not in status["applications"] and status["applications"]["fraud"] == "RUNNING"
        promote(settings, "fraud", v2.version, reason="a commit beside a serve.run app")
        state = service.reconcile()
        assert state.last_error is None and state.heals == heals, state
        sync.wait_model(settings, v2.version)
        live = dashboard_request(settings, "GET", "/api/serve/applications/")["applications"]
        assert live[name]["status"] == "RUNNING" and live[name]["source"] == "imperative"
        assert sync.served_model(settings, name) == v2.version
    finally:
        serve.delete(name)


def test_scaling_is_a_commit_applied_under_load(world):
    settings, (v1, _), repo = world
    service = SyncService(settings)
    promote(settings, "fraud", v1.version, reason="serve v1")  # a no-op if it serves already
    service.reconcile()
    path = repo / "deploy/apps/fraud/serve.yaml"
    document = yaml.safe_load(path.read_text())
    assert document["applications"][0]["deployments"][0]["num_replicas"] == 1
    with support.Load(f"{settings.serve_url}/fraud/predict") as load:
        load.wait_for(v1.version, 10)
        path.write_text(path.read_text().replace("num_replicas: 1", "num_replicas: 2"))
        sync.git(repo, "commit", "--quiet", "-am", "scale fraud to 2 replicas")
        state = service.reconcile()
        assert state.last_error is None, state.last_error
        load.wait_for(v1.version, load.count(v1.version) + 20)
    assert [a for a in load.answers if a.status != 200] == []
    live = dashboard_request(settings, "GET", "/api/serve/applications/")
    replicas = live["applications"]["fraud"]["deployments"]["FraudService"]["replicas"]
    assert [r["state"] for r in replicas] == ["RUNNING", "RUNNING"], replicas
