"""The schema check of ``make check-k8s`` on documents loaded here (no kustomize, no
process): it refuses unknown fields and wrong types the way the API server does, accepts
what deploy/ ships, and the Argo CD project check sees a project that does not exist yet."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from driftloop_workflows.k8s import Schemas, SchemaSet, argocd_problems, documents
from driftloop_workflows.k8s.vendor import SOURCES

ROOT = Path(__file__).resolve().parents[2]
BASE = ROOT / "deploy" / "k8s" / "base"
EVENTS = ROOT / "deploy" / "k8s" / "components" / "argo-events"
ARGOCD = ROOT / "deploy" / "argocd"


@pytest.fixture(scope="module")
def schemas() -> Schemas:
    return Schemas.load(ROOT)


def _resources(kustomization: Path) -> list[dict[str, Any]]:
    """The objects a kustomization lists as resources (not its patches), as written."""
    listed = yaml.safe_load(kustomization.read_text())["resources"]
    return [d for name in listed for d in documents(kustomization.parent / name)]


def _shipped() -> list[tuple[str, dict[str, Any]]]:
    found = [("base", d) for d in _resources(BASE / "kustomization.yaml")]
    found += [("argo-events", d) for d in _resources(EVENTS / "kustomization.yaml")]
    found += [(p.name, d) for p in sorted(ARGOCD.rglob("*.yaml")) for d in documents(p)]
    return found


def _one(kind: str) -> dict[str, Any]:
    """A deep copy of the first shipped object of a kind."""
    return copy.deepcopy(next(d for _, d in _shipped() if d["kind"] == kind))


def _paths(found: list[Any]) -> set[tuple[str, str]]:
    return {(f.path, f.schema) for f in found}


def test_every_operator_is_vendored_at_two_versions_and_kubernetes_at_one(schemas):
    for source in SOURCES:
        assert source.tag in schemas.versions(source.operator), source
        assert (ROOT / "deploy/k8s/schemas" / source.operator / source.tag / "SOURCE").is_file()
    assert len(schemas.versions("kubernetes")) == 1


def test_the_shipped_objects_are_valid_against_every_vendored_version(schemas):
    shipped = _shipped()
    kinds = {d["kind"] for _, d in shipped}
    assert {"WorkflowTemplate", "CronWorkflow", "RayService", "Deployment"} <= kinds
    assert {"Sensor", "EventSource", "Application", "ApplicationSet", "AppProject"} <= kinds
    found = [str(f) for where, d in shipped for f in schemas.validate(d, where)]
    assert found == []


def test_an_unknown_field_of_a_crd_object_is_refused_by_every_version(schemas):
    doc = _one("RayService")
    doc["spec"]["rayClusterConfig"]["headGroupSpec"]["rayStartParam"] = {}
    found = schemas.validate(doc, "planted")
    where = "$.spec.rayClusterConfig.headGroupSpec.rayStartParam"
    assert _paths(found) == {(where, "kuberay v1.6.0"), (where, "kuberay v1.7.0")}
    assert all(f.message == "unknown field" and f.kind == "RayService" for f in found)
    assert "planted: RayService driftloop-serve (ray.io/v1) at " + where in str(found[0])


def test_the_mutex_that_argo_workflows_4_dropped_is_refused_by_4_only(schemas):
    doc = _one("WorkflowTemplate")
    doc["spec"]["synchronization"] = {"mutex": {"name": "retrain-x"}}
    found = schemas.validate(doc, "planted")
    assert _paths(found) == {("$.spec.synchronization.mutex", "argo-workflows v4.1.2")}


def test_a_cron_workflow_with_only_schedule_is_refused_by_argo_workflows_4(schemas):
    doc = _one("CronWorkflow")
    doc["spec"]["schedule"] = doc["spec"].pop("schedules")[0]
    found = {(f.path, f.schema, f.message) for f in schemas.validate(doc, "planted")}
    assert ("$.spec.schedule", "argo-workflows v4.1.2", "unknown field") in found
    assert ("$.spec", "argo-workflows v4.1.2", "'schedules' is a required property") in found
    assert not any(schema.endswith("v3.6.0") for _, schema, _ in found)


def test_a_built_in_kind_refuses_unknown_fields_and_wrong_types(schemas):
    doc = _one("Deployment")
    container = doc["spec"]["template"]["spec"]["containers"][0]
    container["resource"] = container.pop("resources")
    doc["spec"]["replicas"] = "two"
    found = {(f.path, f.message, f.schema) for f in schemas.validate(doc, "planted")}
    assert found == {
        ("$.spec.template.spec.containers[0].resource", "unknown field", "kubernetes v1.36.2"),
        ("$.spec.replicas", "'two' is not of type 'integer'", "kubernetes v1.36.2"),
    }


def test_a_wrong_type_in_a_crd_object_is_refused(schemas):
    doc = _one("PrometheusRule")
    doc["spec"]["groups"][0]["rules"][0]["for"] = 300
    found = schemas.validate(doc, "planted")
    assert {f.path for f in found} == {"$.spec.groups[0].rules[0].for"}
    assert all("is not of type 'string'" in f.message for f in found)


def test_an_api_version_the_operator_does_not_serve_is_refused(schemas):
    doc = _one("KafkaTopic")
    doc["apiVersion"] = "kafka.strimzi.io/v1alpha9"
    found = schemas.validate(doc, "planted")
    assert {(f.path, f.schema) for f in found} == {
        (".apiVersion", "strimzi 0.49.0"),
        (".apiVersion", "strimzi 1.2.0"),
    }
    assert schemas.validate({"apiVersion": "x.io/v1", "kind": "Nothing"}, "p")[0].schema == "-"


def _thing(schemas: Schemas, spec: dict[str, Any]) -> Schemas:
    schema = {"type": "object", "properties": {"spec": spec}}
    thing = SchemaSet("thing-operator", "v1", {("example.io/v1", "Thing"): schema})
    return Schemas([thing], schemas.definitions)


def _refused(schemas: Schemas, spec: dict[str, Any], value: Any) -> set[str]:
    doc = {"apiVersion": "example.io/v1", "kind": "Thing", "metadata": {"name": "t"}}
    return {f"{f.path} {f.message}" for f in schemas.validate({**doc, "spec": value}, "t")}


def test_structural_schema_rules(schemas):
    # An object without properties is closed (the API server prunes every field of it)...
    closed = _thing(schemas, {"type": "object"})
    assert _refused(closed, {}, {"a": 1}) == {"$.spec.a unknown field"}
    # ...unless it preserves unknown fields or gives additionalProperties.
    open_ = _thing(schemas, {"type": "object", "x-kubernetes-preserve-unknown-fields": True})
    assert _refused(open_, {}, {"a": {"b": 1}}) == set()
    mapped = _thing(schemas, {"type": "object", "additionalProperties": {"type": "string"}})
    assert _refused(mapped, {}, {"a": "x"}) == set()
    assert _refused(mapped, {}, {"a": 1}) == {"$.spec.a 1 is not of type 'string'"}
    # int-or-string takes either; nullable takes null; others refuse null.
    port = _thing(
        schemas,
        {"type": "object", "properties": {"port": {"x-kubernetes-int-or-string": True}}},
    )
    assert _refused(port, {}, {"port": 8080}) == _refused(port, {}, {"port": "http"}) == set()
    assert _refused(port, {}, {"port": 1.5}) != set()
    nullable = _thing(
        schemas,
        {
            "type": "object",
            "properties": {
                "a": {"type": "string", "nullable": True},
                "b": {"type": "string"},
            },
        },
    )
    assert _refused(nullable, {}, {"a": None}) == set()
    assert _refused(nullable, {}, {"b": None}) == {"$.spec.b None is not of type 'string'"}


def test_metadata_is_object_meta_at_the_root_and_in_embedded_resources(schemas):
    embedded = _thing(
        schemas,
        {"type": "object", "x-kubernetes-embedded-resource": True, "properties": {}},
    )
    good = {"apiVersion": "v1", "kind": "Pod", "metadata": {"labels": {"a": "b"}}}
    assert _refused(embedded, {}, good) == set()
    bad = {**good, "metadata": {"label": {"a": "b"}}}
    assert _refused(embedded, {}, bad) == {"$.spec.metadata.label unknown field"}
    root = {"apiVersion": "example.io/v1", "kind": "Thing", "metadata": {"nme": "t"}}
    found = {f"{f.path} {f.message}" for f in embedded.validate(root, "t")}
    assert found == {"$.metadata.nme unknown field"}


def _argocd_copy(tmp_path: Path) -> Path:
    shutil.copytree(ARGOCD, tmp_path / "deploy" / "argocd")
    return tmp_path


def _argocd_edited(tmp_path: Path, name: str, old: str, new: str) -> Path:
    """A copy of deploy/argocd with ``old`` replaced by ``new`` in the file ``name``."""
    root = _argocd_copy(tmp_path)
    path = root / "deploy/argocd" / name
    path.write_text(path.read_text().replace(old, new))
    return root


def test_every_argocd_application_has_its_project_in_time():
    assert argocd_problems(ROOT) == []


def test_an_application_in_a_project_it_creates_itself_is_found(tmp_path):
    root = _argocd_edited(tmp_path, "root.yaml", "project: default", "project: driftloop")
    [problem] = argocd_problems(root)
    assert "Application driftloop-root: project 'driftloop' does not exist" in problem


def test_a_project_created_in_the_same_wave_as_its_applications_is_found(tmp_path):
    root = _argocd_edited(tmp_path, "apps/project.yaml", 'sync-wave: "-1"', 'sync-wave: "0"')
    problems = argocd_problems(root)
    assert {p.split(" (env=")[0] for p in problems} == {
        "deploy/argocd/apps/environments.yaml: ApplicationSet driftloop"
    }
    assert len(problems) == 2  # one per environment
    assert all("project 'driftloop' does not exist" in p for p in problems)


def test_a_destination_the_project_does_not_admit_is_found(tmp_path):
    root = _argocd_edited(
        tmp_path, "apps/project.yaml", "namespace: driftloop-staging", "namespace: x"
    )
    [problem] = argocd_problems(root)
    assert "ApplicationSet driftloop (env=staging, " in problem
    assert "destination https://kubernetes.default.svc driftloop-staging is not allowed" in problem
