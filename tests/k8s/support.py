"""What the k8s tests share: where the built tools are, and a thin kubectl client (the
kubectl built with the API server) that reads and writes objects as dicts."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml
from driftloop_workflows.k8s import kustomize_build
from driftloop_workflows.k8s.cluster import TOOLS, Cluster


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
