"""The k8s tier runs against the real control plane `make k8s-up` starts (etcd,
kube-apiserver, Argo Workflows, KubeRay, Argo CD; no kubelet). The session uses the one
that runs, or starts one and stops it at the end; it skips only when the tools are not
built (`make k8s-tools`)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from driftloop_workflows.k8s.cluster import Cluster

from tests.k8s.support import Kube, built_tools

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    tools = built_tools(ROOT)
    if tools is None:
        pytest.skip(
            "the control plane is not built: `make k8s-tools` builds kube-apiserver, etcd, "
            "kubectl and the controllers into .driftloop/tools/k8s-<pins> (once, ~30 min cold)"
        )
    kustomize = Path(os.environ.get("KUSTOMIZE", ROOT / ".driftloop/tools/bin/kustomize"))
    state = Path(os.environ.get("K8S_STATE", ROOT / ".driftloop/k8s"))
    c = Cluster(tools, kustomize, state)
    if c.status():
        yield c
        return
    c.up()
    try:
        yield c
    finally:
        c.down()


@pytest.fixture(scope="session")
def kube(cluster: Cluster) -> Kube:
    return Kube(cluster)
