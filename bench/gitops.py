"""GitOps both ways, in one run: a commit on main until Argo CD has updated the object in the
API server, and a commit until Serve answers the new version through the sync service.

Argo CD: the documented bootstrap (this checkout's deploy/ in a git repository on loopback,
repoURL set to it, root.yaml applied) on the control plane of ``make k8s-up`` (started here
when none runs, and then stopped at the end); then commits of ``deploy/apps/fraud/serve.yaml``,
each rendered as ``make render`` does, timed from the commit until the RayService's
serveConfigV2 in the API server has it (polled every 0.2 s). Baseline in the same run: the
same RayService, its config changed the same way, applied by hand (``kubectl apply
--server-side``) into a namespace Argo CD does not manage, until the API server returns it
— the write without git, Argo CD's poll of the repository (every 15 s here,
``ARGOCD_RECONCILIATION_TIMEOUT``) and its diff and sync.

The sync service: ``bench/sync.py``'s measurement on the running stack (``make up``): commit
→ the new model answering with ``driftloop-sync run`` at its shipped interval, against one
hand PUT of the same swap through Ray's REST API.

    make bench-gitops        # builds the control plane once (make k8s-tools)

A control plane that was already running keeps the Applications this leaves behind (their
repository is deleted at the end): it is a test cluster, started fresh by each k8s-up.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from driftloop_workflows.k8s.cluster import ARGOCD_RECONCILIATION, Cluster

from bench._common import record
from bench.sync import measure as sync_measure
from tests.k8s.support import (
    STAGING,
    Kube,
    Remote,
    bootstrap,
    moved,
    serve_config,
    staging_build,
)
from tests.polling import wait_for

ROOT = Path(__file__).resolve().parents[1]
COMMITS = 4
SCRATCH = "bench-gitops"


def _declares(kube: Kube, namespace: str, text: str) -> Callable[[], bool]:
    return lambda: text in serve_config(kube, namespace)


def by_argocd(kube: Kube, remote: Remote) -> list[float]:
    """Commit and push → serveConfigV2 in the API server, per commit of serve.yaml."""
    serve = remote.work / "deploy/apps/fraud/serve.yaml"
    text = serve.read_text()
    if "threshold: null" not in text:
        raise SystemExit(f"{serve} declares a threshold: this measures changes of one")
    took = []
    for i in range(COMMITS):
        value = f"threshold: 0.{41 + i}"
        serve.write_text(text.replace("threshold: null", value, 1))
        remote.render()
        started = time.monotonic()
        remote.commit(f"fraud: {value}")  # committing locally takes milliseconds of this
        wait_for(f"{value} in the RayService", _declares(kube, STAGING, value), 300, 0.2)
        took.append(time.monotonic() - started)
        print(f"  commit {i + 1}: in the API server {took[-1]:5.1f} s after the push")
    return took


def by_hand(cluster: Cluster, kube: Kube) -> list[float]:
    """``kubectl apply`` → the API server returns it, per change of the same config."""
    service = next(d for d in staging_build(cluster, ROOT) if d["kind"] == "RayService")
    kube.ensure_namespace(SCRATCH)
    took = []
    for i in range(COMMITS):
        value = f"threshold: 0.{61 + i}"
        doc = moved(service, SCRATCH)
        doc["spec"]["serveConfigV2"] = doc["spec"]["serveConfigV2"].replace(
            "threshold: null", value, 1
        )
        started = time.monotonic()
        kube.apply([doc], manager="bench-gitops")
        wait_for(f"{value} applied", _declares(kube, SCRATCH, value), 60, 0.2)
        took.append(time.monotonic() - started)
    kube.kubectl("delete", "namespace", SCRATCH, "--wait=false")
    return took


def measure_argocd(cluster: Cluster) -> dict[str, Any]:
    kube = Kube(cluster)
    base = Path(tempfile.mkdtemp(prefix="bench-gitops-"))
    try:
        remote = Remote.of_checkout(ROOT, base)
        started = time.monotonic()
        bootstrap(kube, ROOT, remote)
        first = time.monotonic() - started
        print(f"\nArgo CD: root.yaml applied -> every Application Synced in {first:.1f} s")
        argo = by_argocd(kube, remote)
        hand = by_hand(cluster, kube)
    finally:
        kube.kubectl("delete", "application", "--all", "-n", "argocd", "--wait=false")
        shutil.rmtree(base, ignore_errors=True)
    poll = float(ARGOCD_RECONCILIATION["ARGOCD_RECONCILIATION_TIMEOUT"].removesuffix("s"))
    result: dict[str, Any] = {
        "argocd_commits": len(argo),
        "argocd_poll_s": poll,
        "argocd_bootstrap_to_synced_s": first,
        "argocd_push_to_object_median_s": statistics.median(argo),
        "argocd_push_to_object_max_s": max(argo),
        "hand_apply_to_object_median_s": statistics.median(hand),
    }
    result["ratio_argocd_over_hand_apply"] = (
        result["argocd_push_to_object_median_s"] / result["hand_apply_to_object_median_s"]
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench/gitops.py")
    parser.add_argument("--tools", type=Path, required=True, help=".driftloop/tools/k8s-<pins>")
    parser.add_argument("--kustomize", type=Path, required=True)
    parser.add_argument("--state", type=Path, default=Path(".driftloop/k8s"))
    args = parser.parse_args()
    cluster = Cluster(args.tools, args.kustomize, args.state, ROOT)
    started_here = not cluster.status()
    if started_here:
        cluster.up()
    try:
        argocd = measure_argocd(cluster)
    finally:
        if started_here:
            cluster.down()
    sync = sync_measure()
    result = {**argocd, **{f"sync_{k}": v for k, v in sync.items()}}
    print(
        f"\ncommit -> object in the API server by Argo CD: median "
        f"{argocd['argocd_push_to_object_median_s']:.1f} s ({argocd['argocd_poll_s']:g} s poll); "
        f"commit -> new model answering by the sync service: median "
        f"{sync['commit_to_answer_median_s']:.1f} s ({sync['interval_s']:g} s poll)"
    )
    record("gitops", result)


if __name__ == "__main__":
    main()
