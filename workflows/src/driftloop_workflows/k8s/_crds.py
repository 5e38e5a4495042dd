"""CRDs for the operators whose kinds the overlays use but which do not run in the k8s
tier's control plane (``make k8s-up``), made from the schemas vendored under
``deploy/k8s/schemas``: those hold only each served version's ``openAPIV3Schema`` (no names,
scope or subresources), which is all the API server needs to store the objects and prune
what a schema does not list, as the real CRDs would."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

STORED_ONLY = {"strimzi": "1.2.0", "prometheus-operator": "v0.93.0"}
"""Operators that do not run here, whose kinds the overlays use: their CRDs are made from the
vendored schemas (deploy/k8s/schemas/<operator>/<version>) so the API server stores and
prunes those objects as the real CRDs would; no controller acts on them."""


def schema_crds(schemas: Path, operator: str, version: str) -> list[dict[str, Any]]:
    """A CustomResourceDefinition per kind of one vendored schema set (namespaced, plural
    = the kind in lower case + "s", as every kind there is named upstream)."""
    sets = json.loads((schemas / operator / version / "schemas.json").read_text())
    by_kind: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for api_version, kinds in sets.items():
        group, ver = api_version.split("/")
        for kind, schema in kinds.items():
            by_kind.setdefault((group, kind), []).append(
                {
                    "name": ver,
                    "served": True,
                    "storage": False,
                    "schema": {"openAPIV3Schema": schema},
                }
            )
    crds = []
    for (group, kind), versions in sorted(by_kind.items()):
        versions[-1]["storage"] = True
        plural = kind.lower() + "s"
        crds.append(
            {
                "apiVersion": "apiextensions.k8s.io/v1",
                "kind": "CustomResourceDefinition",
                "metadata": {"name": f"{plural}.{group}"},
                "spec": {
                    "group": group,
                    "scope": "Namespaced",
                    "names": {"kind": kind, "plural": plural, "singular": kind.lower(),
                              "listKind": f"{kind}List"},
                    "versions": versions,
                },
            }
        )  # fmt: skip
    return crds
