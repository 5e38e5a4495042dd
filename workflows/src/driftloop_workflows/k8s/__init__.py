"""Checks of the Kubernetes manifests under ``deploy/k8s`` and ``deploy/argocd``.

``python -m driftloop_workflows.k8s.check`` (``make check-k8s``) builds every overlay with
kustomize, validates every object against the vendored upstream schemas
(``deploy/k8s/schemas``), checks Argo CD's projects, runs promtool on every
PrometheusRule's groups and checks the Grafana dashboards; the unit tests use the same
functions.
"""

from driftloop_workflows.k8s._argocd import argocd_problems
from driftloop_workflows.k8s._manifests import (
    DEPLOY_K8S,
    Document,
    Tools,
    components,
    dashboard_problems,
    dashboards,
    documents,
    kustomize_build,
    kustomize_build_with,
    overlays,
    promtool_check_rules,
    rule_groups,
    submitters,
    tools,
)
from driftloop_workflows.k8s._schemas import Finding, Schemas, SchemaSet

__all__ = [
    "DEPLOY_K8S",
    "Document",
    "Finding",
    "SchemaSet",
    "Schemas",
    "Tools",
    "argocd_problems",
    "components",
    "dashboard_problems",
    "dashboards",
    "documents",
    "kustomize_build",
    "kustomize_build_with",
    "overlays",
    "promtool_check_rules",
    "rule_groups",
    "submitters",
    "tools",
]
