"""What a schema cannot see in ``deploy/argocd``: that each application's project exists
when the application does, and lets it have its source and destination.

``root.yaml`` is applied by hand; everything else appears only when an application syncs
it, in sync-wave order. An application may use the ``default`` project, a project applied
with it by hand, or one its parent creates in an earlier wave — never one that only it
or a later wave creates (Argo CD then refuses it: "Application referencing project … which
does not exist").
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from driftloop_workflows.k8s._manifests import Document, documents

ARGOCD = Path("deploy/argocd")
ROOT_APP = ARGOCD / "root.yaml"
WAVE = "argocd.argoproj.io/sync-wave"


@dataclass(frozen=True)
class _App:
    """An Application, or an ApplicationSet's template: what it needs of its project."""

    where: str
    project: str
    repo: str
    server: str
    namespace: str
    path: str


def _wave(doc: Document) -> int:
    return int(((doc.get("metadata") or {}).get("annotations") or {}).get(WAVE, "0"))


def _app(where: str, spec: dict[str, Any]) -> _App:
    source = spec.get("source") or {}
    destination = spec.get("destination") or {}
    return _App(
        where,
        str(spec.get("project", "")),
        str(source.get("repoURL", "")),
        str(destination.get("server", "")),
        str(destination.get("namespace", "")),
        str(source.get("path", "")),
    )


def _apps(where: str, doc: Document) -> list[_App]:
    name = f"{where}: {doc.get('kind')} {(doc.get('metadata') or {}).get('name')}"
    if doc.get("kind") == "Application":
        return [_app(name, doc.get("spec") or {})]
    if doc.get("kind") == "ApplicationSet":
        spec = doc.get("spec") or {}
        template = (spec.get("template") or {}).get("spec") or {}
        elements = [
            e
            for g in spec.get("generators") or []
            for e in (g.get("list") or {}).get("elements", [])
        ]
        if not elements:  # other generators: judge the template as written
            return [_app(f"{name} (template)", template)]
        return [
            _app(f"{name} ({', '.join(f'{k}={v}' for k, v in e.items())})", _fill(template, e))
            for e in elements
        ]
    return []


def _fill(value: Any, element: dict[str, Any]) -> Any:
    """A template with a list element's values put in (``{{.key}}`` and ``{{key}}``)."""
    if isinstance(value, dict):
        return {k: _fill(v, element) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, element) for v in value]
    if isinstance(value, str):
        for key, given in element.items():
            value = value.replace(f"{{{{.{key}}}}}", str(given)).replace(
                f"{{{{{key}}}}}", str(given)
            )
    return value


def _allows(project: Document, app: _App) -> list[str]:
    """What the project refuses of the application (templated values are not judged)."""
    spec = project.get("spec") or {}
    problems = []
    repos = [str(r) for r in spec.get("sourceRepos") or []]
    if "{{" not in app.repo and not any(fnmatchcase(app.repo, r) for r in repos):
        problems.append(f"source {app.repo} is not in its sourceRepos")
    if "{{" not in app.namespace + app.server:
        allowed = [
            (str(d.get("server", "*")), str(d.get("namespace", "*")))
            for d in spec.get("destinations") or []
        ]
        if not any(
            fnmatchcase(app.server, s) and fnmatchcase(app.namespace, n) for s, n in allowed
        ):
            problems.append(f"destination {app.server} {app.namespace} is not allowed")
    return problems


def argocd_problems(root: Path) -> list[str]:
    """Every application whose project would not exist in time, or would refuse it."""
    by_hand = documents(root / ROOT_APP)
    projects = {
        d["metadata"]["name"]: d for d in by_hand if d.get("kind") == "AppProject"
    }  # applied with root.yaml, before anything syncs
    apps = [app for d in by_hand for app in _apps(str(ROOT_APP), d)]
    problems = [p for app in apps for p in _check(app, projects)]
    seen: set[str] = set()
    while apps:
        app = apps.pop()
        if not app.path or app.path in seen or "{{" in app.path:
            continue
        seen.add(app.path)
        children = [
            (str(path.relative_to(root)), doc)
            for path in sorted((root / app.path).glob("*.yaml"))
            for doc in documents(path)
            if isinstance(doc, dict)  # an overlay's patch lists are not objects
        ]
        for where, doc in children:
            earlier = {
                d["metadata"]["name"]: d
                for _, d in children
                if d.get("kind") == "AppProject" and _wave(d) < _wave(doc)
            }
            for child in _apps(where, doc):
                problems.extend(_check(child, {**projects, **earlier}))
                apps.append(child)
    return sorted(set(problems))


def _check(app: _App, projects: dict[str, Document]) -> list[str]:
    if app.project == "default":
        return []
    project = projects.get(app.project)
    if project is None:
        return [
            f"{app.where}: project {app.project!r} does not exist when it does "
            "(use default, or create it in an earlier sync wave of its parent)"
        ]
    return [f"{app.where}: project {app.project}: {p}" for p in _allows(project, app)]
