"""The real Argo Workflows controller on the rendered retraining template, as the staging
overlay builds it: the API server stores the template whole (no field pruned by the CRD's
schema), a Workflow from it starts its first step's pod (Pending: no kubelet runs here),
the per-model mutex keeps a second run of the same model waiting, without a pod, the
model's CronWorkflow, as rendered but for its schedule, starts runs of the template, and
`driftloop retrain` with DRIFTLOOP_ARGO_SERVER submits a run through Hera to the real Argo
server with the submitter account's token, once per event."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
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
    kinds = ("WorkflowTemplate", "ServiceAccount", "Role", "RoleBinding", "Secret")
    wanted = [moved(d, NAMESPACE) for d in built if d["kind"] in kinds]
    for binding in (d for d in wanted if d["kind"] == "RoleBinding"):
        for subject in binding["subjects"]:
            subject["namespace"] = NAMESPACE
    kube.ensure_namespace(NAMESPACE)
    kube.apply(wanted)
    return next(d for d in wanted if d["kind"] == "WorkflowTemplate")


@pytest.fixture(scope="module")
def cron(cluster: Cluster) -> dict[str, Any]:
    built = staging_build(cluster, ROOT)
    return next(d for d in built if d["kind"] == "CronWorkflow")


@pytest.fixture
def submitted(kube: Kube, template: dict[str, Any]) -> Iterator[list[str]]:
    """Names of the Workflows a test submits; deleted with their pods afterwards."""
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


def _token(cluster: Cluster, kube: Kube, account: str) -> str:
    """A bearer token of ``account``: for the submitter, the one Kubernetes' token controller
    puts into the overlay's ``driftloop-submitter-token`` Secret (what the trigger service
    reads), for any other a token requested for it."""
    if account != "driftloop-submitter":
        return cluster.kubectl("create", "token", account, "-n", NAMESPACE, "--duration=10m")

    def minted() -> str | None:
        secret = kube.get("secret", "driftloop-submitter-token", NAMESPACE)
        token = ((secret or {}).get("data") or {}).get("token")
        return base64.b64decode(token).decode() if token else None

    return wait_for("the token controller to fill driftloop-submitter-token", minted, 60)


def _retrain(
    cluster: Cluster, kube: Kube, account: str, event_id: str, *, trust: bool = True
) -> subprocess.CompletedProcess[str]:
    """`driftloop retrain` for a drift event, pointed at the Argo server with a token of
    ``account``."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("DRIFTLOOP_")},
        "DRIFTLOOP_ARGO_SERVER": cluster.argo_server,
        "DRIFTLOOP_ARGO_NAMESPACE": NAMESPACE,
        "DRIFTLOOP_ARGO_TOKEN": _token(cluster, kube, account).strip(),
    }
    if trust:  # the Argo server's certificate is verified, against the cluster's CA
        env["REQUESTS_CA_BUNDLE"] = str(cluster.pki.ca)
    argv = [str(Path(sys.executable).parent / "driftloop"), "retrain", "--model", "fraud",
            "--reason", "data_drift", "--window", "3d", "--trigger-event-id", event_id]  # fmt: skip
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)


def test_driftloop_retrain_submits_one_run_per_event_through_the_argo_server(
    cluster: Cluster, kube: Kube, template: dict[str, Any], submitted: list[str]
) -> None:
    event_id = str(uuid.uuid4())
    run_id = f"retrain-{event_id}"
    first = _retrain(cluster, kube, "driftloop-submitter", event_id)
    assert first.returncode == 0, first.stderr
    submitted.append(run_id)
    assert f"submitted {run_id} (argo)" in first.stdout
    wf = kube.get("workflow", run_id, NAMESPACE)
    assert wf is not None
    assert wf["spec"]["workflowTemplateRef"] == {"name": template["metadata"]["name"]}
    given = {p["name"]: p["value"] for p in wf["spec"]["arguments"]["parameters"]}
    assert given == {"model": "fraud", "reason": "data_drift", "window": "3d",
                     "window-end": "", "trigger-event-id": event_id}  # fmt: skip
    # the Argo server created it as the submitter's account, not as its own identity
    assert wf["metadata"]["labels"]["workflows.argoproj.io/creator"] == (
        f"system-serviceaccount-{NAMESPACE}-driftloop-submitter"
    )
    pods = wait_for(f"a pod of {run_id}", lambda: _pods(kube, run_id), timeout=90)
    node = pods[0]["metadata"]["annotations"]["workflows.argoproj.io/node-name"]
    assert node == f"{run_id}.build-dataset(0)"
    init = next(c for c in pods[0]["spec"]["initContainers"] if c["name"] == "init")
    step = json.loads(next(e["value"] for e in init["env"] if e["name"] == "ARGO_TEMPLATE"))
    inputs = {p["name"]: p["value"] for p in json.loads(step["script"]["source"])}
    assert inputs["run_id"] == run_id and inputs["window"] == "3d"

    again = _retrain(cluster, kube, "driftloop-submitter", event_id)  # the event delivered twice
    assert again.returncode == 0, again.stderr
    assert f"already submitted {run_id} (argo)" in again.stdout
    runs = kube.list("workflow", NAMESPACE, "driftloop/model=fraud")
    assert [r["metadata"]["name"] for r in runs].count(run_id) == 1
    still = kube.get("workflow", run_id, NAMESPACE)
    assert still is not None and still["metadata"]["uid"] == wf["metadata"]["uid"]


def test_the_argo_server_refuses_an_account_that_may_not_submit(
    cluster: Cluster, kube: Kube, template: dict[str, Any]
) -> None:
    """The workflow pods' account may report step results, not start runs: the Argo server
    passes its token to Kubernetes, whose RBAC refuses, and nothing is created."""
    event_id = str(uuid.uuid4())
    refused = _retrain(cluster, kube, "driftloop-workflow", event_id)
    assert refused.returncode == 1
    assert f"refused retrain-{event_id}" in refused.stderr
    assert "system:serviceaccount:k8s-workflows:driftloop-workflow" in refused.stderr
    assert 'cannot create resource "workflows"' in refused.stderr
    assert "Traceback" not in refused.stderr
    assert kube.get("workflow", f"retrain-{event_id}", NAMESPACE) is None


def test_a_client_that_does_not_trust_the_argo_server_sends_nothing(
    cluster: Cluster, kube: Kube, template: dict[str, Any]
) -> None:
    """Without the CA of the server's certificate the client stops at the TLS handshake,
    before the token is sent, and says what to set."""
    event_id = str(uuid.uuid4())
    untrusted = _retrain(cluster, kube, "driftloop-submitter", event_id, trust=False)
    assert untrusted.returncode == 1
    assert "certificate" in untrusted.stderr and "REQUESTS_CA_BUNDLE" in untrusted.stderr
    assert "Traceback" not in untrusted.stderr
    assert kube.get("workflow", f"retrain-{event_id}", NAMESPACE) is None
