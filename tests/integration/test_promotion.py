"""Promotion as a git change, on real repositories: a pull request against a bare remote
(the GitHub API call checked against a local stand-in, since GitHub cannot be reached
here), a main that moved, and two promotions racing."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from pydantic import SecretStr

from driftloop.gitops import Git, PromotionRefused, declared, promote
from driftloop.models import Feature, FeatureSpec, Lineage, ModelStore, RowCounts, TrainingWindow
from driftloop.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def _booster(seed: int) -> bytes:
    import xgboost

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(200, 2))
    matrix = xgboost.DMatrix(x, label=(x[:, 0] > 0).astype(int), feature_names=["a", "b"])
    booster = xgboost.train({"seed": seed, "nthread": 1}, matrix, num_boost_round=3)
    return bytes(booster.save_raw("json"))


def _version(store: ModelStore, seed: int) -> str:
    end = datetime(2026, 6, 1, tzinfo=UTC)
    lineage = Lineage(
        git_sha="0" * 40, git_dirty=False, feature_service="fraud_v1",
        feature_views_hash="sha256:x",
        training_window=TrainingWindow(start=end - timedelta(days=7), end=end),
        rows=RowCounts(train=1, validation=1, holdout=1), data_hash="sha256:y", seed=seed,
    )  # fmt: skip
    spec = FeatureSpec(features=[Feature(name="a", type="float"), Feature(name="b", type="float")])
    return store.put("fraud", _booster(seed), filename="model.json", features=spec,
                     lineage=lineage).version  # fmt: skip


@pytest.fixture
def world(tmp_path):
    bare = tmp_path / "remote.git"
    Git(tmp_path).run("init", "--quiet", "--bare", "--initial-branch", "main", str(bare))
    seed = tmp_path / "seed"
    (seed / "deploy/apps/fraud").mkdir(parents=True)
    shutil.copy(ROOT / "deploy/apps/fraud/serve.yaml", seed / "deploy/apps/fraud/serve.yaml")
    (seed / "README.md").write_text("deploy repo\n")
    git = Git(seed)
    git.run("init", "--quiet", "--initial-branch", "main")
    git.run("add", ".")
    git.run("commit", "--quiet", "-m", "deploy: fraud")
    git.run("remote", "add", "origin", str(bare))
    git.run("push", "--quiet", "origin", "main")
    clone = tmp_path / "clone"
    Git(tmp_path).run("clone", "--quiet", str(bare), str(clone))
    settings = Settings(
        state_dir=tmp_path / "state", model_store_uri=str(tmp_path / "models"),
        git_repo=str(clone), deploy_dir=clone / "deploy",
    )  # fmt: skip
    store = ModelStore(settings.model_store)
    return settings, clone, bare, [_version(store, s) for s in (1, 2)]


class _FakeGitHub(BaseHTTPRequestHandler):
    """Stands in for api.github.com: records the pull-request call it receives."""

    calls: list[tuple[str, dict[str, Any], str]] = []  # noqa: RUF012

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _FakeGitHub.calls.append((self.path, body, self.headers.get("Authorization", "")))
        payload = json.dumps({"html_url": "https://github.com/acme/deploy/pull/7"}).encode()
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


def test_pull_request_policy_pushes_a_branch_and_opens_a_pull_request(world):
    settings, _clone, bare, (v1, _) = world
    server = HTTPServer(("127.0.0.1", 0), _FakeGitHub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        pr = settings.model_copy(update={
            "promotion_policy": "pr", "github_api": f"http://127.0.0.1:{server.server_port}",
            "github_token": SecretStr("t0ken"), "github_repository": "acme/deploy"})  # fmt: skip
        main_before = Git(bare).rev("refs/heads/main")
        done = promote(pr, "fraud", v1, reason="drift", trigger_event_id="evt-42")
    finally:
        server.shutdown()
    assert done.pull_request == "https://github.com/acme/deploy/pull/7"
    branch = f"promote/fraud-{v1}"
    assert Git(bare).rev(f"refs/heads/{branch}") == done.commit  # pushed, not forced
    assert Git(bare).rev("refs/heads/main") == main_before  # main untouched: a person merges
    path, body, auth = _FakeGitHub.calls[-1]
    assert path == "/repos/acme/deploy/pulls" and auth == "Bearer t0ken"
    assert body["head"] == branch and body["base"] == "main"
    assert body["title"] == f"Promote fraud {v1} (drift)"
    assert "Trigger-Event: evt-42" in body["body"]


def test_main_moving_elsewhere_is_built_upon_and_a_conflicting_move_is_refused(world):
    settings, clone, _, (v1, v2) = world
    git = Git(clone)
    (clone / "README.md").write_text("someone else's change\n")
    git.run("commit", "--quiet", "-am", "docs")
    done = promote(settings, "fraud", v1)
    assert git.rev("refs/heads/main") == done.commit
    assert git.run("log", "--format=%s", "-2", "main").splitlines()[1] == "docs"
    assert (clone / "README.md").read_text() == "someone else's change\n"  # checkout updated
    # A promotion refuses to overwrite a serve.yaml change it did not see.
    path = clone / "deploy/apps/fraud/serve.yaml"
    base = git.rev("refs/heads/main")
    text = git.show(base, "deploy/apps/fraud/serve.yaml") or ""
    from driftloop.gitops._promote import _fast_forward

    path.write_text(text.replace("max_replicas: 2", "max_replicas: 3"))
    git.run("commit", "--quiet", "-am", "scale")
    with pytest.raises(PromotionRefused, match=r"changed deploy/apps/fraud/serve\.yaml"):
        _fast_forward(git, settings, "main", base, git.rev("refs/heads/main"),
                      "deploy/apps/fraud/serve.yaml", "msg")  # fmt: skip
    assert promote(settings, "fraud", v1).changed is False  # already declared: nothing to do
    assert promote(settings, "fraud", v2).changed


def test_an_event_promoting_again_finds_its_own_commit_and_no_other(world):
    """A promote step run again after its driver died once main had moved: the version is
    declared by the same event's commit, which is reported as this event's promotion; the
    same version declared by another event's commit (or by hand) is only "already
    declared"."""
    settings, clone, _, (v1, v2) = world
    git = Git(clone)
    first = promote(settings, "fraud", v1, reason="drift", trigger_event_id="evt-7")
    assert first.changed and not first.earlier
    commits = git.run("rev-list", "--count", "--all")
    again = promote(settings, "fraud", v1, reason="drift", trigger_event_id="evt-7")
    assert (again.changed, again.earlier, again.commit) == (False, True, first.commit)
    assert git.run("rev-list", "--count", "--all") == commits  # no commit made
    other = promote(settings, "fraud", v1, reason="drift", trigger_event_id="evt-8")
    assert (other.changed, other.earlier, other.message) == (False, False, "already declared")
    by_hand = promote(settings, "fraud", v1)
    assert (by_hand.changed, by_hand.earlier) == (False, False)
    # A later change to the serve config by someone else: the event's commit is no longer
    # the one that declares what serves, so it is not claimed either.
    path = clone / "deploy/apps/fraud/serve.yaml"
    path.write_text(path.read_text().replace("max_replicas: 2", "max_replicas: 3"))
    git.run("commit", "--quiet", "-am", "scale")
    later = promote(settings, "fraud", v1, reason="drift", trigger_event_id="evt-7")
    assert (later.changed, later.earlier) == (False, False)
    assert promote(settings, "fraud", v2, trigger_event_id="evt-9").changed


def test_two_promotions_racing_leave_main_declaring_exactly_one(world):
    settings, clone, _, (v1, v2) = world
    outcomes: dict[str, object] = {}

    def run(version: str) -> None:
        try:
            outcomes[version] = promote(settings, "fraud", version)
        except PromotionRefused as exc:
            outcomes[version] = exc

    threads = [threading.Thread(target=run, args=(v,)) for v in (v1, v2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    git = Git(clone)
    uri, digest = declared(git.show("main", "deploy/apps/fraud/serve.yaml") or "", "fraud")
    won = [v for v, o in outcomes.items() if not isinstance(o, Exception)]
    lost = [v for v, o in outcomes.items() if isinstance(o, Exception)]
    assert len(won) + len(lost) == 2 and won, outcomes
    # Whatever happened, main names one of them, consistently, and history is linear.
    assert uri in {f"models:/fraud/{v}" for v in won}
    assert digest is not None
    assert len(git.run("rev-list", "--merges", "main").split()) == 0
    assert yaml.safe_load(git.show("main", "deploy/apps/fraud/serve.yaml") or "")


def test_a_promotion_re_renders_the_rayservice_in_the_same_commit(tmp_path, world):
    settings, _, _, (v1, _) = world
    repo = tmp_path / "full"
    shutil.copytree(ROOT / "deploy", repo / "deploy")
    git = Git(repo)
    git.run("init", "--quiet", "--initial-branch", "main")
    git.run("add", ".")
    git.run("commit", "--quiet", "-m", "deploy")
    full = settings.model_copy(update={"git_repo": str(repo), "deploy_dir": repo / "deploy"})
    done = promote(full, "fraud", v1)
    assert done.commit is not None
    changed = git.run("show", "--name-only", "--format=", done.commit).split()
    assert sorted(changed) == [
        "deploy/apps/fraud/serve.yaml", "deploy/k8s/base/serving/serve-config.yaml",
    ]  # fmt: skip
    rendered = git.show(done.commit, "deploy/k8s/base/serving/serve-config.yaml") or ""
    assert f"models:/fraud/{v1}" in rendered
    check = subprocess.run(
        [sys.executable, "-m", "driftloop_workflows.render", "--check", "--root", str(repo)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert check.returncode == 0, check.stderr


def test_a_version_declared_as_shadow_beside_the_serving_one_until_a_promotion(world):
    from driftloop_serving import ModelConfig

    from driftloop.gitops import declared_shadow

    settings, clone, _, (v1, v2) = world
    git = Git(clone)
    path = "deploy/apps/fraud/serve.yaml"
    with pytest.raises(PromotionRefused, match="serves no fraud version to shadow"):
        promote(settings, "fraud", v2, as_shadow=True)
    promote(settings, "fraud", v1)
    done = promote(settings, "fraud", v2, as_shadow=True, reason="challenger")
    assert done.changed and done.branch == f"shadow/fraud-{v2}"
    text = git.show("main", path) or ""
    store = ModelStore(settings.model_store)
    assert declared(text, "fraud") == (f"models:/fraud/{v1}", store.get("fraud", v1).sha256)
    assert declared_shadow(text, "fraud") == (f"models:/fraud/{v2}",
                                              store.get("fraud", v2).sha256)  # fmt: skip
    message = git.run("log", "-1", "--format=%B", "main")
    assert message.startswith(f"Shadow fraud {v2} (challenger)")
    assert f"Beside: models:/fraud/{v1}" in message
    # what the replicas read: a valid user_config with both versions
    (app,) = yaml.safe_load(text)["applications"]
    config = ModelConfig.model_validate(app["deployments"][0]["user_config"])
    assert config.shadow_uri == f"models:/fraud/{v2}" and config.model_uri == f"models:/fraud/{v1}"
    assert not promote(settings, "fraud", v2, as_shadow=True).changed  # already the shadow
    assert not promote(settings, "fraud", v1, as_shadow=True).changed  # already serving
    # promoting the shadow ends it: serving v2, no shadow, comments kept
    promote(settings, "fraud", v2)
    text = git.show("main", path) or ""
    assert declared(text, "fraud")[0] == f"models:/fraud/{v2}"
    assert declared_shadow(text, "fraud") == (None, None)
    assert "# promotion clears it." in text


def test_a_version_declared_as_canary_until_removed_or_promoted(world):
    from driftloop_serving import ModelConfig

    from driftloop.gitops import declared_canary, remove_canary

    settings, clone, _, (v1, v2) = world
    git = Git(clone)
    path = "deploy/apps/fraud/serve.yaml"
    sha2 = ModelStore(settings.model_store).get("fraud", v2).sha256
    with pytest.raises(PromotionRefused, match="serves no fraud version to canary"):
        promote(settings, "fraud", v2, as_canary=0.1)
    promote(settings, "fraud", v1)
    done = promote(settings, "fraud", v2, as_canary=0.1, reason="challenger")
    assert done.changed and done.branch == f"canary/fraud-{v2}"
    text = git.show("main", path) or ""
    assert declared(text, "fraud")[0] == f"models:/fraud/{v1}"
    assert declared_canary(text, "fraud") == (f"models:/fraud/{v2}", sha2, 0.1)
    message = git.run("log", "-1", "--format=%B", "main")
    assert message.startswith(f"Canary fraud {v2} (challenger)")
    assert f"Beside: models:/fraud/{v1} (serving; this version answers 0.1 of" in message
    (app,) = yaml.safe_load(text)["applications"]
    config = ModelConfig.model_validate(app["deployments"][0]["user_config"])
    assert (config.canary_uri, config.canary_fraction) == (f"models:/fraud/{v2}", 0.1)
    assert not promote(settings, "fraud", v2, as_canary=0.1).changed  # already the canary
    assert promote(settings, "fraud", v2, as_canary=0.25).changed  # a new fraction
    assert declared_canary(git.show("main", path) or "", "fraud")[2] == 0.25
    with pytest.raises(PromotionRefused, match="one challenger at a time"):
        promote(settings, "fraud", v2, as_shadow=True)
    # removing it: one commit, then nothing to remove
    removed = remove_canary(settings, "fraud", v2, reason="worse live")
    assert removed.changed and removed.branch == f"uncanary/fraud-{v2}"
    assert git.run("log", "-1", "--format=%B", "main").startswith(f"Uncanary fraud {v2}")
    assert f"Canary-Removed: {v2}" in git.run("log", "-1", "--format=%B", "main")
    assert declared_canary(git.show("main", path) or "", "fraud") == (None, None, None)
    assert not remove_canary(settings, "fraud", v2).changed
    # a promotion ends a canary
    promote(settings, "fraud", v2, as_canary=0.1)
    promote(settings, "fraud", v2)
    text = git.show("main", path) or ""
    assert declared(text, "fraud")[0] == f"models:/fraud/{v2}"
    assert declared_canary(text, "fraud") == (None, None, None)
    assert "# sets it, a promotion clears it." in text
