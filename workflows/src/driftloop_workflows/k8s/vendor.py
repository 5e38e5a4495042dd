"""Vendor the upstream schemas that ``make check-k8s`` validates every object against.

    python -m driftloop_workflows.k8s.vendor --mirror DIR [--only OPERATOR]

``DIR`` holds bare git clones named ``<owner>+<name>/repo`` (for example
``argoproj+argo-cd/repo``); every source below is read from a tag of its repository, never
from the network. Each operator version becomes ``deploy/k8s/schemas/<operator>/<version>/``
with ``schemas.json`` (``{apiVersion: {kind: openAPIV3Schema}}`` of the CRDs' served versions,
descriptions dropped) and ``SOURCE`` (repository, tag, commit, paths, licence). Kubernetes'
own kinds come from its swagger (v2) document, trimmed to the definitions that the listed
kinds reach. Nothing else of the upstream repositories is copied.
"""

from __future__ import annotations

import argparse
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMAS = Path("deploy/k8s/schemas")


@dataclass(frozen=True)
class Source:
    """One operator version: which CRD files of which tag, and the kinds taken from them."""

    operator: str
    repo: str  # owner/name on GitHub
    tag: str
    paths: tuple[str, ...]
    kinds: frozenset[str]
    role: str  # "oldest supported" / "newest released"


OLDEST, NEWEST = "oldest supported", "newest released"


def _pair(
    operator: str, repo: str, oldest: str, newest: str, paths: list[str], kinds: str
) -> tuple[Source, Source]:
    """The oldest supported and the newest released version of one operator."""
    chosen = frozenset(kinds.split())
    return (
        Source(operator, repo, oldest, tuple(paths), chosen, OLDEST),
        Source(operator, repo, newest, tuple(paths), chosen, NEWEST),
    )


_WORKFLOWS_CRDS = "manifests/base/crds/full/argoproj.io_{}.yaml"
_KUBERAY_CRDS = "ray-operator/config/crd/bases/ray.io_{}.yaml"
_PROMETHEUS_CRDS = "example/prometheus-operator-crd/monitoring.coreos.com_{}.yaml"
_STRIMZI_CRDS = "packaging/install/cluster-operator/{}.yaml"
SOURCES: tuple[Source, ...] = (
    *_pair(
        "argo-cd",
        "argoproj/argo-cd",
        "v2.8.0",
        "v3.5.1",
        [f"manifests/crds/{n}-crd.yaml" for n in ("application", "appproject", "applicationset")],
        "Application AppProject ApplicationSet",
    ),
    *_pair(
        "argo-workflows",
        "argoproj/argo-workflows",
        "v3.6.0",
        "v4.1.2",
        [_WORKFLOWS_CRDS.format(n) for n in ("workflowtemplates", "cronworkflows", "workflows")],
        "WorkflowTemplate CronWorkflow Workflow",
    ),
    *_pair(
        "argo-events",
        "argoproj/argo-events",
        "v1.9.0",
        "v1.9.11",
        [
            f"manifests/base/crds/argoproj.io_{n}.yaml"
            for n in ("eventbus", "eventsources", "sensors")
        ],
        "EventBus EventSource Sensor",
    ),
    *_pair(
        "kuberay",
        "ray-project/kuberay",
        "v1.6.0",
        "v1.7.0",
        [_KUBERAY_CRDS.format(n) for n in ("rayservices", "rayclusters", "rayjobs")],
        "RayService RayCluster RayJob",
    ),
    *_pair(
        "prometheus-operator",
        "prometheus-operator/prometheus-operator",
        "v0.75.0",
        "v0.93.0",
        [_PROMETHEUS_CRDS.format(n) for n in ("podmonitors", "servicemonitors", "prometheusrules")],
        "PodMonitor ServiceMonitor PrometheusRule",
    ),
    *_pair(
        "strimzi",
        "strimzi/strimzi-kafka-operator",
        "0.49.0",
        "1.2.0",
        [
            _STRIMZI_CRDS.format(n)
            for n in ("040-Crd-kafka", "043-Crd-kafkatopic", "045-Crd-kafkanodepool")
        ],
        "Kafka KafkaTopic KafkaNodePool",
    ),
)
"""What is vendored: for each operator we render objects for, the oldest version the README
supports and the newest release (the mirror's newest tag when vendored)."""

KUBERNETES_REPO = "kubernetes-client/python"
KUBERNETES_TAG = "v36.0.3"  # its CHANGELOG: "Kubernetes API Version: v1.36.2"
KUBERNETES_VERSION = "v1.36.2"
KUBERNETES_PATH = "kubernetes/swagger.json.unprocessed"
KUBERNETES_KINDS = (
    ("", "v1", "ConfigMap"),
    ("", "v1", "Namespace"),
    ("", "v1", "PersistentVolumeClaim"),
    ("", "v1", "Secret"),
    ("", "v1", "Service"),
    ("", "v1", "ServiceAccount"),
    ("apps", "v1", "Deployment"),
    ("apps", "v1", "StatefulSet"),
    ("batch", "v1", "Job"),
    ("batch", "v1", "CronJob"),
    ("networking.k8s.io", "v1", "NetworkPolicy"),
    ("policy", "v1", "PodDisruptionBudget"),
    ("rbac.authorization.k8s.io", "v1", "Role"),
    ("rbac.authorization.k8s.io", "v1", "RoleBinding"),
    ("rbac.authorization.k8s.io", "v1", "ClusterRole"),
    ("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding"),
)
"""The core kinds kept (what deploy/ uses, and the few it is likely to add); the
definitions they reach come along. Add a kind here and re-run to check a new one."""

_NOT_VALIDATION = ("description", "example", "externalDocs")


def strip(node: Any) -> Any:
    """A schema without its prose: ``description`` is dropped from schema nodes only (a
    property that happens to be *named* description stays)."""
    if isinstance(node, list):
        return [strip(n) for n in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _NOT_VALIDATION:
            continue
        if key in ("properties", "definitions", "patternProperties"):
            out[key] = {name: strip(sub) for name, sub in value.items()}
        else:
            out[key] = strip(value)
    return out


def _git(mirror: Path, repo: str, *args: str) -> str:
    git_dir = mirror / repo.replace("/", "+") / "repo"
    return subprocess.run(
        ["git", "--git-dir", str(git_dir), *args],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def vendor_operator(mirror: Path, root: Path, source: Source) -> Path:
    """Write one operator version's ``schemas.json`` and ``SOURCE``; returns the directory."""
    import yaml

    commit = _git(mirror, source.repo, "rev-parse", f"{source.tag}^{{commit}}").strip()
    found: dict[str, dict[str, Any]] = {}
    for path in source.paths:
        for crd in yaml.safe_load_all(_git(mirror, source.repo, "show", f"{commit}:{path}")):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            spec = crd["spec"]
            if spec["names"]["kind"] not in source.kinds:
                continue
            for version in spec["versions"]:
                if not version.get("served", True):
                    continue
                schema = (version.get("schema") or {}).get("openAPIV3Schema")
                if schema is None:
                    raise ValueError(f"{path}: {version['name']} has no openAPIV3Schema")
                api_version = f"{spec['group']}/{version['name']}"
                # status is the controller's to write (a subresource): not validated here.
                schema = {**schema, "properties": dict(schema.get("properties", {}))}
                schema["properties"].pop("status", None)
                found.setdefault(api_version, {})[spec["names"]["kind"]] = strip(schema)
    directory = root / SCHEMAS / source.operator / source.tag
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "schemas.json").write_text(json.dumps(found, sort_keys=True, indent=0) + "\n")
    kinds = sorted(f"{v}/{k}" for v, ks in found.items() for k in ks)
    (directory / "SOURCE").write_text(
        f"{source.operator} {source.tag} ({source.role})\n"
        f"repository: https://github.com/{source.repo}\n"
        f"tag: {source.tag}\ncommit: {commit}\n"
        "paths (each CustomResourceDefinition's spec.versions[].schema.openAPIV3Schema,\n"
        "served versions only, without descriptions and status; nothing else copied):\n"
        + "".join(f"  {p}\n" for p in source.paths)
        + "kinds: "
        + ", ".join(kinds)
        + "\nlicence: Apache-2.0 (the repository's LICENSE)\n"
        "regenerate: python -m driftloop_workflows.k8s.vendor --mirror DIR\n"
    )
    return directory


def _reachable(definitions: dict[str, Any], roots: list[str]) -> set[str]:
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for ref in _refs(definitions[name]):
            todo.append(ref.removeprefix("#/definitions/"))
    return seen


def _refs(node: Any) -> list[str]:
    if isinstance(node, list):
        return [r for n in node for r in _refs(n)]
    if not isinstance(node, dict):
        return []
    own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
    return own + [r for k, v in node.items() if k != "$ref" for r in _refs(v)]


def vendor_kubernetes(mirror: Path, root: Path) -> Path:
    """Kubernetes' swagger definitions of :data:`KUBERNETES_KINDS` and all they reach."""
    commit = _git(mirror, KUBERNETES_REPO, "rev-parse", f"{KUBERNETES_TAG}^{{commit}}").strip()
    swagger = json.loads(_git(mirror, KUBERNETES_REPO, "show", f"{commit}:{KUBERNETES_PATH}"))
    definitions: dict[str, Any] = swagger["definitions"]
    roots = ["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"]
    for group, version, kind in KUBERNETES_KINDS:
        matches = [
            name
            for name, d in definitions.items()
            if {"group": group, "version": version, "kind": kind}
            in d.get("x-kubernetes-group-version-kind", [])
        ]
        if len(matches) != 1:
            raise ValueError(f"{group}/{version} {kind}: {len(matches)} definitions")
        roots.extend(matches)
    kept = {name: strip(definitions[name]) for name in sorted(_reachable(definitions, roots))}
    directory = root / SCHEMAS / "kubernetes" / KUBERNETES_VERSION
    directory.mkdir(parents=True, exist_ok=True)
    body = {"swagger": swagger["swagger"], "definitions": kept}
    (directory / "definitions.json").write_text(json.dumps(body, sort_keys=True, indent=0) + "\n")
    (directory / "SOURCE").write_text(
        f"kubernetes {KUBERNETES_VERSION}: the API's swagger (OpenAPI v2) definitions\n"
        f"repository: https://github.com/{KUBERNETES_REPO}\n"
        f"tag: {KUBERNETES_TAG} (CHANGELOG: Kubernetes API Version: {KUBERNETES_VERSION};\n"
        "  the file is kubernetes/kubernetes api/openapi-spec/swagger.json of that release)\n"
        f"commit: {commit}\npath: {KUBERNETES_PATH}\n"
        "trimmed to the definitions these kinds reach (descriptions removed):\n"
        + "".join(f"  {g or 'core'}/{v} {k}\n" for g, v, k in KUBERNETES_KINDS)
        + "licence: Apache-2.0 (the repository's LICENSE)\n"
        "regenerate: python -m driftloop_workflows.k8s.vendor --mirror DIR\n"
    )
    return directory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mirror", type=Path, required=True)
    parser.add_argument("--root", type=Path, default=Path.cwd())
    parser.add_argument("--only", help="one operator (or 'kubernetes')")
    args = parser.parse_args()
    if args.only in (None, "kubernetes"):
        print(vendor_kubernetes(args.mirror, args.root))
    for source in SOURCES:
        if args.only in (None, source.operator):
            print(vendor_operator(args.mirror, args.root, source))


if __name__ == "__main__":
    main()
