"""The manifests through the real tools: kustomize builds each overlay into what the file
checks promise, and promtool loads every alert rule. Skipped, with the reason, where the
binaries are absent; `make check-k8s` builds them and never skips."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from driftloop_workflows.k8s import (
    kustomize_build,
    overlays,
    promtool_check_rules,
    rule_groups,
    tools,
)
from driftloop_workflows.k8s.check import check

ROOT = Path(__file__).resolve().parents[2]
TOOLS = tools(ROOT)
OVERLAYS = overlays(ROOT)
NAMESPACED_EXCEPTIONS = {"Namespace", "ClusterRole", "ClusterRoleBinding"}

needs_kustomize = pytest.mark.skipif(
    TOOLS.kustomize is None,
    reason="kustomize not in .driftloop/tools/bin or PATH: `make k8s-tools` builds it "
    "(`make check-k8s` enforces this check)",
)
needs_promtool = pytest.mark.skipif(
    TOOLS.promtool is None,
    reason="promtool not in .driftloop/tools/bin or PATH: `make k8s-tools` builds it "
    "(`make check-k8s` enforces this check)",
)


def _build(overlay: Path) -> list[dict[str, Any]]:
    assert TOOLS.kustomize is not None
    return kustomize_build(TOOLS.kustomize, overlay)


def test_there_are_staging_and_prod_overlays():
    assert [p.name for p in OVERLAYS] == ["prod", "staging"]


@needs_kustomize
@pytest.mark.parametrize("overlay", OVERLAYS, ids=lambda p: p.name)
def test_each_overlay_builds_into_one_namespace_with_the_rendered_serve_config(overlay):
    docs = _build(overlay)
    namespace = yaml.safe_load((overlay / "kustomization.yaml").read_text())["namespace"]
    for doc in docs:
        if doc["kind"] not in NAMESPACED_EXCEPTIONS:
            assert doc["metadata"]["namespace"] == namespace, (doc["kind"], doc["metadata"])
    [service] = [d for d in docs if d["kind"] == "RayService"]
    rendered = yaml.safe_load(
        (ROOT / "deploy/k8s/base/serving/serve-config.yaml").read_text()
    )  # the patch `make render` writes
    assert service["spec"]["serveConfigV2"] == rendered["spec"]["serveConfigV2"]
    assert service["spec"]["rayClusterConfig"]["headGroupSpec"], "the patch kept the cluster"
    for doc in docs:
        if doc["kind"] == "Service":
            assert doc["spec"]["type"] == "ClusterIP", doc["metadata"]["name"]
        if doc["kind"] == "RayService":
            for group in doc["spec"]["rayClusterConfig"]["workerGroupSpecs"]:
                assert "replicas" not in group


@needs_kustomize
@pytest.mark.parametrize("overlay", OVERLAYS, ids=lambda p: p.name)
def test_an_overlays_image_tag_reaches_every_pod_and_workflow_step(overlay):
    kustomization = yaml.safe_load((overlay / "kustomization.yaml").read_text())
    tags = {i["name"]: i["newTag"] for i in kustomization["images"]}
    images: list[str] = []

    def collect(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "image" and isinstance(value, str):
                    images.append(value)
                else:
                    collect(value)
        elif isinstance(node, list):
            for value in node:
                collect(value)

    docs = _build(overlay)
    collect(docs)
    ours = [i for i in images if i.split(":")[0] in tags]
    assert len(ours) >= 12  # the services, both Ray clusters' groups, the workflow's steps
    for image in ours:
        name, tag = image.split(":")
        assert tag == tags[name], image
    [template] = [d for d in docs if d["kind"] == "WorkflowTemplate"]
    assert template["spec"]["serviceAccountName"] == "driftloop-workflow"
    patch = yaml.safe_load(template["spec"]["podSpecPatch"])
    env = {e["name"]: e for e in patch["containers"][0]["env"]}
    assert env["RAY_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "driftloop-ray-token"


@needs_kustomize
def test_kustomize_refuses_a_broken_overlay(tmp_path):
    (tmp_path / "kustomization.yaml").write_text("resources:\n  - missing.yaml\n")
    with pytest.raises(RuntimeError, match="kustomize build"):
        _build(tmp_path)


@needs_kustomize
@needs_promtool
@pytest.mark.parametrize("overlay", OVERLAYS, ids=lambda p: p.name)
def test_promtool_accepts_every_rule(overlay):
    assert TOOLS.promtool is not None
    groups = rule_groups(_build(overlay))
    assert set(groups) == {
        "driftloop-drift",
        "driftloop-gitops",
        "driftloop-kafka",
        "driftloop-serving",
    }
    for rules in groups.values():
        assert "SUCCESS" in promtool_check_rules(TOOLS.promtool, rules)


@needs_promtool
def test_promtool_refuses_a_broken_rule():
    assert TOOLS.promtool is not None
    broken = {"groups": [{"name": "x", "rules": [{"alert": "X", "expr": "sum(rate(x[5m])"}]}]}
    with pytest.raises(RuntimeError, match="promtool check rules failed"):
        promtool_check_rules(TOOLS.promtool, broken)


@needs_kustomize
@needs_promtool
def test_check_k8s_passes():
    assert TOOLS.kustomize is not None and TOOLS.promtool is not None
    assert check(ROOT, TOOLS.kustomize, TOOLS.promtool) == []
