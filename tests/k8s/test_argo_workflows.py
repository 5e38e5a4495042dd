"""The real Argo Workflows controller on the rendered retraining template, as the staging
overlay builds it: the API server stores the template whole (no field pruned by the CRD's
schema), a Workflow from it starts its first step's pod (Pending: no kubelet runs here),
the per-model mutex keeps a second run of the same model waiting, without a pod, and the
model's CronWorkflow, as rendered but for its schedule, starts runs of the template."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from driftloop_workflows.k8s.cluster import Cluster

from tests.k8s.support import Kube, moved, staging_build
from tests.polling import wait_for

ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "k8s-workflows"
WORKFLOW_LABEL = "workflows.argoproj.io/workflow"


@pytest.fixture(scope="module")
def template(cluster: Cluster, kube: Kube) -> dict[str, Any]:
    built = staging_build(cluster, ROOT)
    wanted = [d for d in built if d["kind"] in ("WorkflowTemplate", "ServiceAccount")]
    kube.ensure_namespace(NAMESPACE)
    kube.apply([moved(d, NAMESPACE) for d in wanted])
    return next(d for d in wanted if d["kind"] == "WorkflowTemplate")


@pytest.fixture(scope="module")
def cron(cluster: Cluster) -> dict[str, Any]:
    built = staging_build(cluster, ROOT)
    return next(d for d in built if d["kind"] == "CronWorkflow")


@pytest.fixture
def submitted(kube: Kube, template: dict[str, Any]) -> Iterator[list[str]]:
    """Names of the Workflows a test submits; deleted with their pods afterwards (there is no
    garbage collector without a controller-manager)."""
    names: list[str] = []
    yield names
    for name in names:
        kube.delete("workflow", name, NAMESPACE)
        for pod in kube.list("pod", NAMESPACE, f"{WORKFLOW_LABEL}={name}"):
            kube.delete("pod", pod["metadata"]["name"], NAMESPACE)


def _submit(kube: Kube, template: dict[str, Any], model: str, names: list[str]) -> str:
    name = f"retrain-{model}-{uuid.uuid4().hex[:6]}"
    kube.create(
        {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Workflow",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {
                "workflowTemplateRef": {"name": template["metadata"]["name"]},
                "arguments": {
                    "parameters": [
                        {"name": "model", "value": model},
                        {"name": "window", "value": "3d"},
                        {"name": "reason", "value": "k8s-tier"},
                    ]
                },
            },
        }
    )
    names.append(name)
    return name


def _pods(kube: Kube, workflow: str) -> list[dict[str, Any]]:
    return kube.list("pod", NAMESPACE, f"{WORKFLOW_LABEL}={workflow}")


def test_the_template_is_stored_whole(kube: Kube, template: dict[str, Any]) -> None:
    stored = kube.get("workflowtemplate", template["metadata"]["name"], NAMESPACE)
    assert stored is not None
    assert stored["spec"] == template["spec"], "the API server pruned or changed the template"
    assert stored["spec"]["synchronization"] == {
        "mutexes": [{"name": "retrain-{{workflow.parameters.model}}"}]
    }


def test_a_workflow_gets_its_first_steps_pod(
    kube: Kube, template: dict[str, Any], submitted: list[str]
) -> None:
    name = _submit(kube, template, "fraud", submitted)
    pods = wait_for(f"a pod of workflow {name}", lambda: _pods(kube, name), timeout=90)
    assert len(pods) == 1
    pod = pods[0]
    node = pod["metadata"]["annotations"]["workflows.argoproj.io/node-name"]
    assert node == f"{name}.build-dataset(0)"  # the first attempt (the step has retries)
    assert pod["spec"]["serviceAccountName"] == "driftloop-workflow"
    assert pod["status"]["phase"] == "Pending"
    main = next(c for c in pod["spec"]["containers"] if c["name"] == "main")
    assert main["image"] == "driftloop/driftloop:0.1.0"
    assert "driftloop_workflows.steps:build_dataset" in main["args"]
    # the workflow's parameters reached the step: the executor's init container carries the
    # resolved template, whose script source is the step's inputs (Hera's runner reads them)
    init = next(c for c in pod["spec"]["initContainers"] if c["name"] == "init")
    step = json.loads(next(e["value"] for e in init["env"] if e["name"] == "ARGO_TEMPLATE"))
    assert step["name"] == "build-dataset"
    inputs = {p["name"]: p["value"] for p in json.loads(step["script"]["source"])}
    assert inputs["model"] == "fraud"
    assert inputs["window"] == "3d"
    assert inputs["run_id"] == name
    # the podSpecPatch of the overlay reached the pod: settings and the Ray token
    assert {"configMapRef": {"name": "driftloop-env"}} in main["envFrom"]
    assert "RAY_AUTH_TOKEN" in {e["name"] for e in main["env"]}

    wf = kube.get("workflow", name, NAMESPACE)
    assert wf is not None
    assert wf["status"]["phase"] == "Running"
    holding = wf["status"]["synchronization"]["mutex"]["holding"]
    assert [h["mutex"] for h in holding] == [f"{NAMESPACE}/Mutex/retrain-fraud"]


def test_a_second_run_of_the_same_model_waits_for_the_mutex(
    kube: Kube, template: dict[str, Any], submitted: list[str]
) -> None:
    first = _submit(kube, template, "churn", submitted)
    wait_for(f"a pod of {first}", lambda: _pods(kube, first), timeout=90)
    second = _submit(kube, template, "churn", submitted)
    other = _submit(kube, template, "fraud-lite", submitted)
    # another model is not held back: its first pod comes while the second churn run waits
    wait_for(f"a pod of {other}", lambda: _pods(kube, other), timeout=90)

    def waiting() -> dict[str, Any] | None:
        wf = kube.get("workflow", second, NAMESPACE)
        sync = ((wf or {}).get("status") or {}).get("synchronization") or {}
        return wf if sync.get("mutex", {}).get("waiting") else None

    wf = wait_for(f"{second} waiting on the mutex", waiting, timeout=60)
    assert wf["status"]["phase"] == "Pending"
    assert _pods(kube, second) == []


def test_the_cronworkflow_starts_runs_of_the_template_with_its_parameters(
    kube: Kube, template: dict[str, Any], cron: dict[str, Any], submitted: list[str]
) -> None:
    """The rendered CronWorkflow, its schedule made every minute (a weekly one would not
    fire during a test), is taken by the controller's cron loop: it starts a Workflow from
    the retraining template with the schedule's parameters, whose first step gets its pod."""
    every_minute = moved(cron, NAMESPACE)
    name = f"{cron['metadata']['name']}-{uuid.uuid4().hex[:6]}"
    every_minute["metadata"]["name"] = name
    every_minute["spec"]["schedules"] = ["* * * * *"]
    kube.create(every_minute)
    try:

        def started() -> list[dict[str, Any]]:
            return kube.list("workflow", NAMESPACE, f"workflows.argoproj.io/cron-workflow={name}")

        runs = wait_for(f"a run started by CronWorkflow {name}", started, timeout=150)
        submitted.extend(r["metadata"]["name"] for r in runs)
        run = runs[0]
        assert run["spec"]["workflowTemplateRef"] == {"name": template["metadata"]["name"]}
        given = {p["name"]: p["value"] for p in run["spec"]["arguments"]["parameters"]}
        wanted = cron["spec"]["workflowSpec"]["arguments"]["parameters"]
        assert given == {p["name"]: p["value"] for p in wanted}
        assert given["reason"] == "schedule"
        wf = run["metadata"]["name"]
        pods = wait_for(f"a pod of {wf}", lambda: _pods(kube, wf), timeout=90)
        node = pods[0]["metadata"]["annotations"]["workflows.argoproj.io/node-name"]
        assert node == f"{wf}.build-dataset(0)"
        stored = kube.get("cronworkflow", name, NAMESPACE)
        assert stored is not None
        conditions = (stored.get("status") or {}).get("conditions") or []
        assert not [c for c in conditions if c.get("type") == "SpecError"], conditions
    finally:
        kube.delete("cronworkflow", name, NAMESPACE)
        submitted.extend(
            r["metadata"]["name"]
            for r in kube.list("workflow", NAMESPACE, f"workflows.argoproj.io/cron-workflow={name}")
            if r["metadata"]["name"] not in submitted
        )
