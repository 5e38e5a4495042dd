"""``make check-k8s``: every overlay builds (alone and with each opt-in component, and
with exactly one path from drift events to runs), every object of every build and of
``deploy/argocd`` validates against the vendored schemas of the oldest supported and the
newest released version of its operator (unknown fields are errors), every Argo CD
application's project exists in time, every alert rule loads, every dashboard parses, and
the local Prometheus config with its rules checks.

    python -m driftloop_workflows.k8s.check [--root DIR] [--kustomize BIN] [--promtool BIN]

Without ``--kustomize``/``--promtool`` the binaries come from ``.driftloop/tools/bin``
(``make k8s-tools``) or PATH; a missing one is an error here, never a skip.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from driftloop_workflows.k8s._argocd import ARGOCD, argocd_problems
from driftloop_workflows.k8s._manifests import (
    Document,
    components,
    dashboard_problems,
    dashboards,
    documents,
    kustomize_build,
    kustomize_build_with,
    overlays,
    promtool_check_config,
    promtool_check_rules,
    rule_groups,
    submitters,
    tools,
)
from driftloop_workflows.k8s._schemas import Schemas


def check(root: Path, kustomize: str, promtool: str) -> list[str]:
    """Every problem found (empty when all is well); progress goes to stdout."""
    problems: list[str] = []
    schemas = Schemas.load(root)
    found = overlays(root)
    if not found:
        problems.append("no overlay under deploy/k8s/overlays")
    for overlay in found:
        try:
            docs = kustomize_build(kustomize, overlay)
        except RuntimeError as exc:
            problems.append(str(exc))
            continue
        print(f"kustomize build {overlay.relative_to(root)}: {len(docs)} objects")
        problems.extend(_one_submitter(overlay.relative_to(root), docs))
        problems.extend(_valid(schemas, str(overlay.relative_to(root)), docs))
        for component in components(root):
            where = f"{overlay.relative_to(root)} + {component.relative_to(root)}"
            try:
                with_component = kustomize_build_with(kustomize, overlay, component)
            except RuntimeError as exc:
                problems.append(str(exc))
                continue
            print(f"kustomize build {where}: {len(with_component)} objects")
            problems.extend(_one_submitter(where, with_component))
            problems.extend(_valid(schemas, where, with_component))
        groups = rule_groups(docs)
        if not groups:
            problems.append(f"{overlay.relative_to(root)}: no PrometheusRule")
        for name, rules in groups.items():
            try:
                promtool_check_rules(promtool, rules)
            except RuntimeError as exc:
                problems.append(f"{overlay.relative_to(root)}: PrometheusRule {name}: {exc}")
            else:
                count = sum(len(g["rules"]) for g in rules["groups"])
                print(f"  promtool check rules {name}: {count} rules SUCCESS")
    for path in sorted((root / ARGOCD).rglob("*.yaml")):
        problems.extend(_valid(schemas, str(path.relative_to(root)), documents(path)))
    found_problems = argocd_problems(root)
    problems.extend(found_problems)
    if not found_problems:
        print(f"{ARGOCD}: every application's project exists when it does, and admits it")
    # The local Prometheus: its config (which loads its rendered alert rules) must check.
    local = root / "deploy" / "local" / "prometheus" / "prometheus.yml"
    try:
        promtool_check_config(promtool, local)
    except RuntimeError as exc:
        problems.append(f"{local.relative_to(root)}: {exc}")
    else:
        print(f"promtool check config {local.relative_to(root)}: SUCCESS (with its rules)")
    boards = dashboards(root)
    if not boards:
        problems.append("no dashboard JSON under deploy/k8s")
    for board in boards:
        found_problems = dashboard_problems(board)
        problems.extend(found_problems)
        if not found_problems:
            print(f"dashboard {board.relative_to(root)}: valid JSON")
    return problems


def _valid(schemas: Schemas, where: str, docs: list[Document]) -> list[str]:
    """Each object against every vendored version of its operator (and Kubernetes')."""
    findings = [str(f) for doc in docs for f in schemas.validate(doc, where)]
    if not findings:
        owners = sorted({s.label for d in docs for s in schemas.owners(d["apiVersion"], d["kind"])})
        print(f"  schemas {where}: {len(docs)} objects valid against {', '.join(owners)}")
    return findings


def _one_submitter(where: object, docs: list[Document]) -> list[str]:
    """Runs from drift events have one source: the trigger, or (opt-in) a Sensor."""
    found = submitters(docs)
    if len(found) == 1:
        return []
    return [f"{where}: drift events would become runs through {found or 'nothing'}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--root", type=Path, default=Path.cwd())
    parser.add_argument("--kustomize")
    parser.add_argument("--promtool")
    args = parser.parse_args()
    found = tools(args.root)
    kustomize = args.kustomize or found.kustomize
    promtool = args.promtool or found.promtool
    if kustomize is None or promtool is None:
        missing = [n for n, p in (("kustomize", kustomize), ("promtool", promtool)) if p is None]
        print(f"missing {' and '.join(missing)}: run `make k8s-tools`", file=sys.stderr)
        sys.exit(2)
    problems = check(args.root, kustomize, promtool)
    if problems:
        print("check-k8s failed:", *problems, sep="\n  ", file=sys.stderr)
        sys.exit(1)
    print(
        "check-k8s: all overlays build, every object matches the vendored schemas, "
        "all rules load, all dashboards parse"
    )


if __name__ == "__main__":
    main()
