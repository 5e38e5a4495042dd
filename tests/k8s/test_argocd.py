"""The real Argo CD on the documented bootstrap: `deploy/` committed to a git repository
served on loopback (file://), its repoURL set to that repository as deploy/k8s/README.md
says, and `deploy/argocd/root.yaml` applied once. Every Application it leads to reaches
Synced, and the objects of the staging overlay are in the API server as git has them.
Then git is the interface: a hand edit of a managed object is reverted (self-heal), a
commit that changes serve.yaml (rendered as `make render` does) reaches the RayService's
serveConfigV2, and its `git revert` takes it back; so does a promotion made by the real
`driftloop promote` (its store URI and digest, no local path), undone by reverting its
commit. The tests of this module run in order, on one repository.

A manifest removed from git is pruned by the root Application. Not testable here: pruning
by the environments' applications. They sync with PruneLast=true, so Argo CD prunes only
after every other object is healthy, and without the Deployment controllers, a scheduler,
kubelet or volume provisioner the Deployments and PersistentVolumeClaims never are (a manifest
removed from git left the sync "waiting for healthy state" and its PodMonitors in
place)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from driftloop_workflows.k8s.cluster import Cluster

from tests.k8s.support import (
    APPS,
    STAGING,
    Kube,
    Remote,
    bootstrap,
    describe,
    git,
    serve_config,
    staging_build,
    synced_at,
)
from tests.polling import wait_for
from tests.samples import sample_lineage

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory) -> Remote:
    return Remote.of_checkout(ROOT, tmp_path_factory.mktemp("gitops"))


@pytest.fixture(scope="module")
def synced(kube: Kube, remote: Remote) -> dict[str, dict[str, Any]]:
    return bootstrap(kube, ROOT, remote)


def test_every_application_reaches_synced(synced: dict[str, dict[str, Any]]) -> None:
    assert set(synced) == set(APPS)
    for app in synced.values():
        assert app["status"]["sync"]["status"] == "Synced", describe(synced)


def test_the_staging_objects_are_in_the_api_server_as_built(
    cluster: Cluster, kube: Kube, synced: dict[str, dict[str, Any]]
) -> None:
    built = staging_build(cluster, ROOT)
    missing = []
    for doc in built:
        meta = doc["metadata"]
        group = doc["apiVersion"].rpartition("/")[0]
        resource = f"{doc['kind'].lower()}.{group}" if group else doc["kind"].lower()
        got = kube.get(resource, meta["name"], meta.get("namespace"))
        if got is None:
            missing.append(f"{doc['kind']} {meta['name']}")
    assert missing == []
    template = next(d for d in built if d["kind"] == "WorkflowTemplate")
    stored = kube.get("workflowtemplate", "driftloop-retrain", "driftloop-staging")
    assert stored is not None
    assert stored["spec"] == template["spec"]
    service = next(d for d in built if d["kind"] == "RayService")
    stored = kube.get("rayservice", "driftloop-serve", "driftloop-staging")
    assert stored is not None
    assert stored["spec"]["serveConfigV2"] == service["spec"]["serveConfigV2"]


def test_the_synced_retraining_template_runs_and_its_cronworkflow_is_accepted(
    kube: Kube, synced: dict[str, dict[str, Any]]
) -> None:
    """What Argo CD synced into the staging namespace is what the Workflows controller runs:
    a Workflow from the synced template gets its first step's pod, with the synced account,
    and the synced CronWorkflow carries no spec error."""
    name = f"k8s-tier-{uuid.uuid4().hex[:6]}"
    kube.create({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
        "metadata": {"name": name, "namespace": STAGING},
        "spec": {"workflowTemplateRef": {"name": "driftloop-retrain"},
                 "arguments": {"parameters": [{"name": "model", "value": "fraud"}]}},
    })  # fmt: skip
    label = f"workflows.argoproj.io/workflow={name}"
    try:
        pods = wait_for(f"a pod of {name}", lambda: kube.list("pod", STAGING, label), 90)
        node = pods[0]["metadata"]["annotations"]["workflows.argoproj.io/node-name"]
        assert node == f"{name}.build-dataset(0)"
        assert pods[0]["spec"]["serviceAccountName"] == "driftloop-workflow"
    finally:
        kube.delete("workflow", name, STAGING)  # its pods go with it (garbage collector)
    crons = kube.list("cronworkflow", STAGING)
    assert crons, "Argo CD synced no CronWorkflow"
    for cron in crons:
        conditions = (cron.get("status") or {}).get("conditions") or []
        assert not [c for c in conditions if c.get("type") == "SpecError"], conditions


def test_a_hand_edit_is_reverted(kube: Kube, synced: dict[str, dict[str, Any]]) -> None:
    env = kube.get("configmap", "driftloop-env", STAGING)
    assert env is not None
    key, value = sorted(env["data"].items())[0]
    kube.kubectl("patch", "configmap", "driftloop-env", "-n", STAGING, "--type=merge",
                 "-p", json.dumps({"data": {key: "edited-by-hand"}}))  # fmt: skip

    def restored() -> bool:
        live = kube.get("configmap", "driftloop-env", STAGING)
        return live is not None and live["data"][key] == value

    wait_for(f"Argo CD to put {key} back", restored, timeout=120)


def test_a_commit_to_serve_yaml_reaches_the_rayservice(
    kube: Kube, remote: Remote, synced: dict[str, dict[str, Any]]
) -> None:
    serve = remote.work / "deploy/apps/fraud/serve.yaml"
    text = serve.read_text()
    assert "threshold: null" in text
    serve.write_text(text.replace("threshold: null", "threshold: 0.42", 1))
    remote.render()
    t0 = time.monotonic()
    sha = remote.commit("fraud: threshold 0.42")
    wait_for("the commit in the RayService", lambda: "threshold: 0.42" in serve_config(kube), 180)
    print(f"commit -> serveConfigV2 in the API server: {time.monotonic() - t0:.1f} s")
    wait_for(f"driftloop-staging synced at {sha[:8]}", lambda: synced_at(kube, STAGING, sha), 120)
    rendered = yaml.safe_load(
        (remote.work / "deploy/k8s/base/serving/serve-config.yaml").read_text()
    )
    assert serve_config(kube) == rendered["spec"]["serveConfigV2"]

    # the rollback: `git revert` of that commit
    sha = remote.revert()
    wait_for("the revert in the RayService", lambda: "threshold: null" in serve_config(kube), 180)
    wait_for(f"driftloop-staging synced at {sha[:8]}", lambda: synced_at(kube, STAGING, sha), 120)


def test_a_manifest_removed_from_git_is_pruned(
    kube: Kube, remote: Remote, synced: dict[str, dict[str, Any]]
) -> None:
    """The root Application prunes (automated, no PruneLast): an object committed under
    deploy/argocd/apps/ is created, and deleted once its manifest is removed from git; the
    objects still in git stay. (The environments' applications prune last, after every
    other object is healthy, which without a kubelet theirs never are: not tested here.)"""
    name = "driftloop-k8s-tier-prune"
    manifest = remote.work / "deploy/argocd/apps/prune-check.yaml"
    manifest.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "argocd"}, "data": {"added": "by a commit"},
    }))  # fmt: skip
    remote.commit("argocd/apps: a ConfigMap to prune")
    wait_for(f"ConfigMap {name} created", lambda: kube.get("configmap", name, "argocd"), 180)
    manifest.unlink()
    t0 = time.monotonic()
    sha = remote.commit("argocd/apps: remove the ConfigMap")
    wait_for(f"ConfigMap {name} pruned", lambda: kube.get("configmap", name, "argocd") is None,
             180)  # fmt: skip
    print(f"manifest removed -> object pruned: {time.monotonic() - t0:.1f} s")

    wait_for(f"driftloop-root synced at {sha[:8]}", lambda: synced_at(kube, "driftloop-root", sha),
             120)  # fmt: skip
    assert kube.get("applicationset", "driftloop", "argocd") is not None
    assert kube.get("appproject", "driftloop", "argocd") is not None
    assert {"driftloop-staging", "driftloop-prod"} <= {
        a["metadata"]["name"] for a in kube.list("application", "argocd")
    }


def _stored_model(store: str) -> Any:
    """A model version in ``store``: a small booster of its own, what a promotion names."""
    import numpy as np
    import xgboost

    from driftloop.models import Feature, FeatureSpec, ModelStore

    rng = np.random.default_rng(3)
    x = rng.gamma(2.0, 2.0, (300, 2))
    matrix = xgboost.DMatrix(x, label=(x[:, 0] > 6).astype(int), feature_names=["amount", "hour"])
    booster = xgboost.train({"max_depth": 2, "seed": 3, "nthread": 1}, matrix, num_boost_round=5)
    spec = FeatureSpec(features=[Feature(name="amount", type="float"),
                                 Feature(name="hour", type="float")])  # fmt: skip
    return ModelStore(store).put(
        "fraud", bytes(booster.save_raw("json")), filename="model.json", features=spec,
        lineage=sample_lineage(3, 0.5),
    )  # fmt: skip


def test_a_promotion_by_driftloop_promote_reaches_the_rayservice_and_a_revert_undoes_it(
    kube: Kube, remote: Remote, synced: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    """`driftloop promote` (merge policy) commits serve.yaml and its rendered RayService
    config on main; pushed, Argo CD brings the version into the RayService; `git revert` of
    the promotion commit takes it out again. The declared config names the model by its
    store URI and digest, never by a path of this machine."""
    store = str(tmp_path / "models")
    version = _stored_model(store)
    before = serve_config(kube)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("DRIFTLOOP_")},
        "DRIFTLOOP_GIT_REPO": str(remote.work),
        "DRIFTLOOP_DEPLOY_DIR": str(remote.work / "deploy"),
        "DRIFTLOOP_MODEL_STORE_URI": store,
        "DRIFTLOOP_STATE_DIR": str(tmp_path / "state"),
        "DRIFTLOOP_PROMOTION_POLICY": "merge",
        "GIT_AUTHOR_NAME": "k8s tier", "GIT_AUTHOR_EMAIL": "k8s@localhost",
        "GIT_COMMITTER_NAME": "k8s tier", "GIT_COMMITTER_EMAIL": "k8s@localhost",
    }  # fmt: skip
    done = subprocess.run(
        [str(Path(sys.executable).parent / "driftloop"), "promote", version.version,
         "--reason", "k8s tier"],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    message = git(remote.work, "log", "-1", "--format=%B")
    assert f"Lineage: models:/fraud/{version.version}/metadata.json" in message.splitlines()
    assert str(tmp_path) not in message  # the commit names the store's parts by URI only
    sha = remote.push()
    t0 = time.monotonic()
    declared = f"models:/fraud/{version.version}"
    wait_for(f"{declared} in the RayService", lambda: declared in serve_config(kube), 180)
    print(f"driftloop promote's commit -> serveConfigV2: {time.monotonic() - t0:.1f} s")
    wait_for(f"driftloop-staging synced at {sha[:8]}", lambda: synced_at(kube, STAGING, sha), 120)
    config = serve_config(kube)
    assert version.sha256 in config
    assert str(tmp_path) not in config  # a store URI and a digest, no local path
    rendered = yaml.safe_load(
        (remote.work / "deploy/k8s/base/serving/serve-config.yaml").read_text()
    )
    assert config == rendered["spec"]["serveConfigV2"]

    sha = remote.revert()
    wait_for("the revert in the RayService", lambda: serve_config(kube) == before, 180)
    wait_for(f"driftloop-staging synced at {sha[:8]}", lambda: synced_at(kube, STAGING, sha), 120)
