"""The real Argo CD on the documented bootstrap: `deploy/` committed to a git repository
served on loopback (file://), its repoURL set to that repository as deploy/k8s/README.md
says, and `deploy/argocd/root.yaml` applied once. Every Application it leads to reaches
Synced, and the objects of the staging overlay are in the API server as git has them."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from driftloop_workflows.k8s.cluster import Cluster

from tests.k8s.support import Kube, staging_build, wait_for

ROOT = Path(__file__).resolve().parents[2]
UPSTREAM = "https://github.com/driftloop/driftloop.git"
APPS = ("driftloop-root", "driftloop-staging", "driftloop-prod")
pytestmark = pytest.mark.timeout(900)


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A bare repository whose main holds this checkout's deploy/ with repoURL pointed at
    it; its file:// URL."""
    base = tmp_path_factory.mktemp("gitops")
    work, bare = base / "work", base / "driftloop.git"
    shutil.copytree(ROOT / "deploy", work / "deploy")
    url = f"file://{bare}"
    for f in (work / "deploy/argocd").rglob("*.yaml"):
        f.write_text(f.read_text().replace(UPSTREAM, url))
    _git(base, "init", "-q", "-b", "main", str(work))
    _git(work, "add", "-A")
    _git(
        work,
        "-c",
        "user.name=k8s tier",
        "-c",
        "user.email=k8s@localhost",
        "commit",
        "-qm",
        "deploy",
    )
    _git(base, "clone", "-q", "--bare", str(work), str(bare))
    return url


@pytest.fixture(scope="module")
def synced(kube: Kube, remote: str) -> dict[str, dict[str, Any]]:
    root = yaml.safe_load((ROOT / "deploy/argocd/root.yaml").read_text())
    root["spec"]["source"]["repoURL"] = remote
    kube.apply([root])

    def applications() -> dict[str, dict[str, Any]]:
        return {a["metadata"]["name"]: a for a in kube.list("application", "argocd")}

    def all_synced() -> dict[str, dict[str, Any]] | None:
        apps = applications()
        done = set(APPS) <= set(apps) and all(
            (a.get("status") or {}).get("sync", {}).get("status") == "Synced"
            and (a["status"].get("operationState") or {}).get("phase") == "Succeeded"
            for a in apps.values()
        )
        return apps if done else None

    try:
        return wait_for("every Application Synced", all_synced, timeout=600, every=3)
    except AssertionError as e:
        raise AssertionError(f"{e}\n{_describe(applications())}") from None


def _describe(apps: dict[str, dict[str, Any]]) -> str:
    lines = []
    for name, app in sorted(apps.items()):
        st = app.get("status") or {}
        op = st.get("operationState") or {}
        lines.append(
            f"{name}: sync={st.get('sync', {}).get('status')} op={op.get('phase')} "
            f"{op.get('message', '')[:400]} conditions={st.get('conditions')}"
        )
        for r in (op.get("syncResult") or {}).get("resources", []):
            if r.get("status") not in ("Synced", None):
                lines.append(f"  {r.get('kind')} {r.get('name')}: {r.get('message')}")
    return "\n".join(lines) or "no Application"


def test_every_application_reaches_synced(synced: dict[str, dict[str, Any]]) -> None:
    assert set(synced) == set(APPS)
    for app in synced.values():
        assert app["status"]["sync"]["status"] == "Synced", _describe(synced)


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
