"""What the k8s tests (and bench/gitops.py) share: where the built tools are, a thin kubectl
client (the kubectl built with the API server) that reads and writes objects as dicts, and
the documented Argo CD bootstrap on a git repository served on loopback."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from driftloop_workflows.k8s import kustomize_build
from driftloop_workflows.k8s.cluster import TOOLS, Cluster

from tests.polling import wait_for

UPSTREAM = "https://github.com/driftloop/driftloop.git"
APPS = ("driftloop-root", "driftloop-staging", "driftloop-prod")
STAGING = "driftloop-staging"


def built_tools(root: Path) -> Path | None:
    """The tools directory `make k8s-tools` filled (K8S_TOOLS, else the newest complete
    .driftloop/tools/k8s-*), or None."""
    given = os.environ.get("K8S_TOOLS")
    candidates = [Path(given)] if given else sorted(
        (root / ".driftloop/tools").glob("k8s-*"), key=lambda p: p.stat().st_mtime, reverse=True
    )  # fmt: skip
    for d in candidates:
        if all((d / "bin" / t).exists() for t in TOOLS) and (d / "upstream/SOURCE").exists():
            return d
    return None


class Kube:
    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    def kubectl(self, *args: str, stdin: str | None = None) -> str:
        return self.cluster.kubectl(*args, stdin=stdin)

    def apply(self, docs: list[dict[str, Any]], manager: str = "k8s-tests") -> str:
        return self.kubectl(
            "apply", "--server-side", f"--field-manager={manager}", "-f", "-",
            stdin=yaml.safe_dump_all(docs),
        )  # fmt: skip

    def create(self, doc: dict[str, Any]) -> dict[str, Any]:
        out = self.kubectl("create", "-o", "json", "-f", "-", stdin=yaml.safe_dump(doc))
        created: dict[str, Any] = json.loads(out)
        return created

    def get(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        ns = ["-n", namespace] if namespace else []
        out = self.kubectl("get", kind, name, *ns, "-o", "json", "--ignore-not-found")
        return json.loads(out) if out.strip() else None

    def list(
        self, kind: str, namespace: str | None = None, selector: str | None = None
    ) -> list[dict[str, Any]]:
        ns = ["-n", namespace] if namespace else ["--all-namespaces"]
        sel = ["-l", selector] if selector else []
        items: list[dict[str, Any]] = json.loads(
            self.kubectl("get", kind, *ns, *sel, "-o", "json")
        )["items"]
        return items

    def delete(self, kind: str, name: str, namespace: str) -> None:
        self.kubectl("delete", kind, name, "-n", namespace, "--ignore-not-found", "--wait=false")

    def ensure_namespace(self, name: str) -> None:
        self.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}])


def staging_build(cluster: Cluster, root: Path) -> list[dict[str, Any]]:
    """``kustomize build deploy/k8s/overlays/staging``, parsed."""
    return kustomize_build(str(cluster.kustomize), root / "deploy/k8s/overlays/staging")


def moved(doc: dict[str, Any], namespace: str) -> dict[str, Any]:
    """A copy of a namespaced object in ``namespace`` (status and server fields dropped)."""
    copy: dict[str, Any] = json.loads(json.dumps(doc))
    copy["metadata"]["namespace"] = namespace
    copy.pop("status", None)
    return copy


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True)
    return done.stdout.strip()


@dataclass(frozen=True)
class Remote:
    """A bare repository whose main holds a checkout's deploy/ with repoURL pointed at it,
    and the work tree that pushes to it (as deploy/k8s/README.md's bootstrap says)."""

    work: Path
    bare: Path

    @property
    def url(self) -> str:
        return f"file://{self.bare}"

    @classmethod
    def of_checkout(cls, root: Path, base: Path) -> Remote:
        repo = cls(base / "work", base / "driftloop.git")
        shutil.copytree(root / "deploy", repo.work / "deploy")
        for f in (repo.work / "deploy/argocd").rglob("*.yaml"):
            f.write_text(f.read_text().replace(UPSTREAM, repo.url))
        git(base, "init", "-q", "-b", "main", str(repo.work))
        git(base, "init", "-q", "--bare", "-b", "main", str(repo.bare))
        repo.commit("deploy")
        return repo

    def commit(self, message: str) -> str:
        """Commit every change in the work tree and push it to main; the new SHA."""
        git(self.work, "add", "-A")
        git(self.work, "-c", "user.name=k8s tier", "-c", "user.email=k8s@localhost",
            "commit", "-qm", message)  # fmt: skip
        return self.push()

    def revert(self) -> str:
        """`git revert` of the last commit, pushed to main; the new SHA."""
        git(self.work, "-c", "user.name=k8s tier", "-c", "user.email=k8s@localhost",
            "revert", "--no-edit", "HEAD")  # fmt: skip
        return self.push()

    def push(self) -> str:
        git(self.work, "push", "-q", str(self.bare), "main")
        return git(self.work, "rev-parse", "HEAD")

    def render(self) -> None:
        """`make render` in the work tree: serve.yaml into the RayService's config."""
        subprocess.run(
            [sys.executable, "-m", "driftloop_workflows.render", "--root", str(self.work)],
            check=True,
            capture_output=True,
        )


def applications(kube: Kube) -> dict[str, dict[str, Any]]:
    return {a["metadata"]["name"]: a for a in kube.list("application", "argocd")}


def bootstrap(kube: Kube, root: Path, remote: Remote, timeout: float = 600) -> dict[str, Any]:
    """Apply deploy/argocd/root.yaml with repoURL set to ``remote``, and wait until every
    Application is Synced with its operation Succeeded; the Applications."""
    app = yaml.safe_load((root / "deploy/argocd/root.yaml").read_text())
    app["spec"]["source"]["repoURL"] = remote.url
    kube.apply([app])

    def all_synced() -> dict[str, dict[str, Any]] | None:
        apps = applications(kube)
        done = set(APPS) <= set(apps) and all(
            (a.get("status") or {}).get("sync", {}).get("status") == "Synced"
            and (a["status"].get("operationState") or {}).get("phase") == "Succeeded"
            for a in apps.values()
        )
        return apps if done else None

    try:
        synced: dict[str, Any] = wait_for("every Application Synced", all_synced, timeout, 3)
    except AssertionError as e:
        raise AssertionError(f"{e}\n{describe(applications(kube))}") from None
    return synced


def describe(apps: dict[str, dict[str, Any]]) -> str:
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


def serve_config(kube: Kube, namespace: str = STAGING) -> str:
    """The serveConfigV2 of the RayService ``driftloop-serve`` in ``namespace``."""
    service = kube.get("rayservice", "driftloop-serve", namespace)
    assert service is not None
    config: str = service["spec"]["serveConfigV2"]
    return config


def synced_at(kube: Kube, app: str, sha: str) -> bool:
    found = kube.get("application", app, "argocd")
    st = (found or {}).get("status") or {}
    return bool(st.get("sync", {}).get("revision") == sha and st["sync"]["status"] == "Synced")
