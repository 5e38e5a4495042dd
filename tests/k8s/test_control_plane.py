"""The API server itself: it answers only on 127.0.0.1, only to a client certificate of its
own CA, and every controller's CRDs are established."""

from __future__ import annotations

import ssl
import subprocess

import httpx
import pytest
from driftloop_workflows.k8s.cluster import API_PORT, ARGO_SERVER_HOST_PORT, Cluster

from tests.k8s.support import Kube

CRDS = (
    "workflows.argoproj.io",
    "workflowtemplates.argoproj.io",
    "cronworkflows.argoproj.io",
    "workflowtaskresults.argoproj.io",
    "applications.argoproj.io",
    "applicationsets.argoproj.io",
    "appprojects.argoproj.io",
    "rayservices.ray.io",
    "rayclusters.ray.io",
    "rayjobs.ray.io",
)


def _context(cluster: Cluster, with_cert: bool) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(cluster.pki.ca))
    if with_cert:
        ctx.load_cert_chain(str(cluster.pki.client_cert), str(cluster.pki.client_key))
    return ctx


def test_serves_readyz_to_its_client_certificate(cluster: Cluster) -> None:
    r = httpx.get(f"{cluster.server}/readyz?verbose", verify=_context(cluster, True), timeout=10)
    assert r.status_code == 200, r.text
    assert "readyz check passed" in r.text


def test_refuses_a_client_without_a_certificate(cluster: Cluster) -> None:
    r = httpx.get(f"{cluster.server}/api/v1/namespaces", verify=_context(cluster, False))
    assert r.status_code == 401


@pytest.mark.parametrize("port", [API_PORT, ARGO_SERVER_HOST_PORT], ids=["api", "argo-server"])
def test_listens_on_loopback_only(cluster: Cluster, port: int) -> None:
    """The host's ports of the control plane: the API server's and the Argo server's."""
    listening = subprocess.run(
        ["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True, check=True
    ).stdout.split()
    addresses = [w for w in listening if w.endswith(f":{port}")]
    assert addresses == [f"127.0.0.1:{port}"]


def test_the_argo_server_refuses_a_request_without_a_token(cluster: Cluster) -> None:
    r = httpx.get(f"{cluster.argo_server}/api/v1/workflows/argo", verify=_context(cluster, False))
    assert r.status_code == 401, r.text


@pytest.mark.parametrize("name", CRDS)
def test_crd_is_established(kube: Kube, name: str) -> None:
    crd = kube.get("crd", name)
    assert crd is not None, f"CRD {name} is not installed"
    conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
    assert conditions.get("Established") == "True", conditions
