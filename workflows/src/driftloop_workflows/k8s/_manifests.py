"""Reading, building and checking the manifests; every tool is an argument, never assumed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEPLOY_K8S = Path("deploy/k8s")
TOOLS_BIN = Path(".driftloop/tools/bin")
"""Where ``make k8s-tools`` puts kustomize and promtool (git-ignored)."""

Document = dict[str, Any]


@dataclass(frozen=True)
class Tools:
    """Paths of the binaries found, or None."""

    kustomize: str | None
    promtool: str | None


def tools(root: Path) -> Tools:
    """kustomize and promtool from ``.driftloop/tools/bin``, else from PATH."""

    def find(name: str) -> str | None:
        local = root / TOOLS_BIN / name
        if local.is_file() and os.access(local, os.X_OK):
            return str(local)
        return shutil.which(name)

    return Tools(find("kustomize"), find("promtool"))


def documents(path: Path) -> list[Document]:
    """The YAML documents of a file (empty ones dropped)."""
    import yaml

    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def overlays(root: Path) -> list[Path]:
    """Every overlay directory (one with a kustomization.yaml)."""
    return sorted(p.parent for p in (root / DEPLOY_K8S / "overlays").glob("*/kustomization.yaml"))


def kustomize_build(kustomize: str, directory: Path, timeout_s: float = 120) -> list[Document]:
    """``kustomize build`` of a directory, parsed; raises with kustomize's message."""
    import yaml

    result = subprocess.run(
        [kustomize, "build", str(directory)],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"kustomize build {directory} failed:\n{result.stderr.strip()}")
    return [d for d in yaml.safe_load_all(result.stdout) if d is not None]


def components(root: Path) -> list[Path]:
    """Every opt-in kustomize component (a directory under ``components/``)."""
    found = (root / DEPLOY_K8S / "components").glob("*/kustomization.yaml")
    return sorted(p.parent for p in found)


def kustomize_build_with(
    kustomize: str, overlay: Path, component: Path, timeout_s: float = 120
) -> list[Document]:
    """``kustomize build`` of an overlay as if it listed ``component`` (in its namespace)."""
    import yaml

    namespace = yaml.safe_load((overlay / "kustomization.yaml").read_text()).get("namespace")
    with tempfile.TemporaryDirectory(prefix="driftloop-kustomize-") as directory:
        body: Document = {
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "resources": [os.path.relpath(overlay.absolute(), directory)],
            "components": [os.path.relpath(component.absolute(), directory)],
        }
        if namespace:
            body["namespace"] = namespace
        (Path(directory) / "kustomization.yaml").write_text(yaml.safe_dump(body))
        return kustomize_build(kustomize, Path(directory), timeout_s)


def submitters(docs: list[Document]) -> list[str]:
    """What in a build turns drift events into runs: the trigger, an Argo Events Sensor."""
    return [
        f"{d['kind']} {d['metadata']['name']}"
        for d in docs
        if d.get("kind") == "Sensor"
        or (d.get("kind") == "Deployment" and d["metadata"]["name"] == "driftloop-trigger")
    ]


def rule_groups(docs: list[Document]) -> dict[str, dict[str, Any]]:
    """``<PrometheusRule name>`` → its rules in Prometheus's own file format."""
    found: dict[str, dict[str, Any]] = {}
    for doc in docs:
        if doc.get("kind") == "PrometheusRule":
            found[doc["metadata"]["name"]] = {"groups": doc["spec"]["groups"]}
    return found


def _promtool(promtool: str, what: str, path: Path, timeout_s: float) -> str:
    """``promtool check <what> <path>``: its output, or raises with it."""
    result = subprocess.run(
        [promtool, "check", what, str(path)],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    output = (result.stdout + result.stderr).strip()
    if result.returncode != 0:
        raise RuntimeError(f"promtool check {what} failed:\n{output}")
    return output


def promtool_check_config(promtool: str, path: Path, timeout_s: float = 60) -> str:
    """``promtool check config`` on a Prometheus config (and the rule files it names)."""
    return _promtool(promtool, "config", path, timeout_s)


def promtool_check_rules(promtool: str, rules: dict[str, Any], timeout_s: float = 60) -> str:
    """``promtool check rules`` on one rule file's content; its output, or raises with it."""
    import yaml

    with tempfile.TemporaryDirectory(prefix="driftloop-rules-") as directory:
        path = Path(directory) / "rules.yaml"
        path.write_text(yaml.safe_dump(rules, sort_keys=False))
        return _promtool(promtool, "rules", path, timeout_s)


def dashboards(root: Path) -> list[Path]:
    """Every Grafana dashboard kept as JSON under ``deploy/k8s``."""
    return sorted((root / DEPLOY_K8S).rglob("dashboards/*.json"))


def dashboard_problems(path: Path) -> list[str]:
    """What is wrong with a dashboard file: not JSON, or panels Grafana cannot draw."""
    try:
        board = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        return [f"{path.name}: not JSON: {exc}"]
    if not isinstance(board, dict):
        return [f"{path.name}: not a JSON object"]
    required = ("uid", "title", "panels")
    problems = [f"{path.name}: no {key}" for key in required if not board.get(key)]
    ids: set[int] = set()
    for panel in board.get("panels") or []:
        title = panel.get("title", "?")
        if panel.get("id") in ids:
            problems.append(f"{path.name}: panel id {panel.get('id')} twice")
        ids.add(panel.get("id"))
        if panel.get("type") == "row":
            continue
        targets = panel.get("targets") or []
        if not targets or not all(str(t.get("expr", "")).strip() for t in targets):
            problems.append(f"{path.name}: panel {title!r} has a target without a query")
    return problems
