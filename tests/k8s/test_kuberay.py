"""The real KubeRay operator on the staging overlay's RayService: it makes the RayCluster the
RayService declares, with its head Service and the head pod object (Pending: no kubelet
runs here, so Serve never answers and the RayService never becomes ready)."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest
from driftloop_workflows.k8s.cluster import Cluster

from tests.k8s.support import Kube, moved, staging_build
from tests.polling import wait_for

ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "k8s-kuberay"


@pytest.fixture(scope="module")
def rayservice(cluster: Cluster, kube: Kube) -> dict[str, Any]:
    built = staging_build(cluster, ROOT)
    service = next(d for d in built if d["kind"] == "RayService")
    accounts = [d for d in built if d["kind"] == "ServiceAccount"]
    kube.ensure_namespace(NAMESPACE)
    token = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "driftloop-ray-token", "namespace": NAMESPACE},
        "stringData": {"auth_token": secrets.token_urlsafe(24)},
    }
    kube.apply([*(moved(d, NAMESPACE) for d in accounts), token, moved(service, NAMESPACE)])
    return service


def _cluster_of(kube: Kube, name: str) -> dict[str, Any] | None:
    for rc in kube.list("raycluster", NAMESPACE):
        owners = rc["metadata"].get("ownerReferences", [])
        if any(o["kind"] == "RayService" and o["name"] == name for o in owners):
            return rc
    return None


def test_the_rayservice_is_stored_whole(kube: Kube, rayservice: dict[str, Any]) -> None:
    stored = kube.get("rayservice", rayservice["metadata"]["name"], NAMESPACE)
    assert stored is not None
    assert stored["spec"]["serveConfigV2"] == rayservice["spec"]["serveConfigV2"]
    assert (
        stored["spec"]["rayClusterConfig"]["authOptions"]
        == rayservice["spec"]["rayClusterConfig"]["authOptions"]
    )


def test_the_operator_makes_the_raycluster(kube: Kube, rayservice: dict[str, Any]) -> None:
    name = rayservice["metadata"]["name"]
    rc = wait_for(f"a RayCluster of RayService {name}", lambda: _cluster_of(kube, name), 90)
    want = rayservice["spec"]["rayClusterConfig"]
    head = rc["spec"]["headGroupSpec"]
    want_head = want["headGroupSpec"]
    assert head["rayStartParams"] == want_head["rayStartParams"]
    images = [c["image"] for c in head["template"]["spec"]["containers"]]
    assert images == [c["image"] for c in want_head["template"]["spec"]["containers"]]
    assert [g["groupName"] for g in rc["spec"]["workerGroupSpecs"]] == [
        g["groupName"] for g in want["workerGroupSpecs"]
    ]
    assert rc["spec"]["authOptions"] == want["authOptions"]


def test_the_raycluster_gets_its_head_service_and_pods(
    kube: Kube, rayservice: dict[str, Any]
) -> None:
    name = rayservice["metadata"]["name"]
    rc = wait_for(f"a RayCluster of RayService {name}", lambda: _cluster_of(kube, name), 90)
    cluster_name = rc["metadata"]["name"]
    head = f"ray.io/cluster={cluster_name},ray.io/node-type=head"

    services = wait_for(
        f"the head Service of {cluster_name}", lambda: kube.list("service", NAMESPACE, head), 90
    )
    assert [s["metadata"]["name"] for s in services] == [f"{cluster_name}-head-svc"]
    ports = {p["name"]: p["port"] for p in services[0]["spec"]["ports"]}
    assert ports["gcs-server"] == 6379
    assert ports["serve"] == 8000
    assert services[0]["spec"]["type"] == "ClusterIP"

    pods = wait_for(
        f"the head pod of {cluster_name}", lambda: kube.list("pod", NAMESPACE, head), 90
    )
    assert len(pods) == 1
    assert pods[0]["status"]["phase"] == "Pending"
    containers = {c["name"]: c for c in pods[0]["spec"]["containers"]}
    assert "autoscaler" in containers  # the operator's sidecar: enableInTreeAutoscaling
    for container in containers.values():
        env = {e["name"]: e for e in container.get("env", [])}
        assert env["RAY_AUTH_MODE"]["value"] == "token"
        ref = env["RAY_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"]
        assert ref["name"] == "driftloop-ray-token"

    # the cpu group's minReplicas (1) worker, and the RayService tracking its pending cluster
    workers = f"ray.io/cluster={cluster_name},ray.io/group=cpu"
    wait_for(
        f"a cpu worker pod of {cluster_name}", lambda: kube.list("pod", NAMESPACE, workers), 90
    )
    status = kube.get("rayservice", name, NAMESPACE)
    assert status is not None
    assert status["status"]["pendingServiceStatus"]["rayClusterName"] == cluster_name
