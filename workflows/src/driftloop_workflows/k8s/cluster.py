"""``make k8s-up`` / ``make k8s-down``: a real control plane on loopback for the ``k8s``
test tier, from the binaries ``make k8s-tools`` builds (``deploy/k8s/cluster.mk``).

    python -m driftloop_workflows.k8s.cluster --tools DIR --kustomize BIN --state DIR up|down|status

``up`` starts, each in one network namespace of their own (see ``_procs``): etcd,
kube-apiserver (client certificates only, no anonymous access, RBAC), then installs the
controllers' CRDs and Argo CD's ConfigMaps/Secret, then starts three controllers of
kube-controller-manager (the garbage collector, which finishes foreground deletions such
as Argo CD's prunes; namespace deletion; service-account token Secrets), redis, Argo CD's
repo-server, application controller and applicationset controller (out of cluster:
``ARGOCD_FAKE_IN_CLUSTER``), the Argo Workflows controller, the Argo server and the KubeRay
operator. No kubelet, scheduler or other controllers: pods are created and stay Pending,
Deployments get no ReplicaSets.
The only ports on the host are the API server's and the Argo server's, on 127.0.0.1;
``state/kubeconfig`` reaches the first, the Argo server takes bearer tokens of Kubernetes
(``--auth-mode client``) over TLS with a certificate of the same CA (``state/pki/ca.crt``).
Each start is fresh (the state directory is emptied first); logs are in ``state/logs``.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import ssl
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from driftloop_workflows.k8s._crds import STORED_ONLY, schema_crds
from driftloop_workflows.k8s._pki import Pki, kubeconfig, make_pki
from driftloop_workflows.k8s._procs import NotReady, Processes, alive, require

API_PORT = 16443
ETCD_PORT = 16379
REDIS_PORT = 16637
WORKFLOWS_METRICS_PORT = 16090
CONTROLLER_MANAGER_PORT = 16257
KUBE_CONTROLLERS = (
    "garbage-collector-controller",
    "namespace-controller",
    "serviceaccount-token-controller",
)
"""What kube-controller-manager runs here: the garbage collector, which completes foreground
deletions (Argo CD prunes that way) and removes dependents of deleted owners, namespace
deletion, and the token Secrets of ``kubernetes.io/service-account-token`` (the overlay's
``driftloop-submitter-token``). Not the Deployment, ReplicaSet or Job controllers: without a
kubelet their pods would only pile up Pending."""
ARGO_SERVER_PORT = 2746  # in the namespace; on the host:
ARGO_SERVER_HOST_PORT = 16746
ARGO_SERVER_TLS = "argo-server-tls"
KUBERAY_PORTS = (16180, 16181)  # metrics, probe
REPO_SERVER_PORTS = (16281, 16282)  # gRPC, metrics
CONTROLLER_METRICS_PORT = 16283
APPSET_PORTS = (16284, 16285, 16286)  # metrics, probe, webhook
NAMESPACES = ("argo", "argocd", "ray-system")
WORKFLOW_EXECUTOR = "quay.io/argoproj/argoexec:v4.0.5"
"""The image the Argo Workflows controller names in the pods it creates (none run here)."""
ARGOCD_RECONCILIATION = {
    "ARGOCD_RECONCILIATION_TIMEOUT": "15s",
    "ARGOCD_RECONCILIATION_JITTER": "0s",
}
"""What install.yaml's Deployments read from argocd-cm's timeout.reconciliation(.jitter) into
the environment: git is polled every 15 s (upstream 120 s, plus up to 60 s of jitter), and
the repo-server keeps a resolved branch as long."""


TOOLS = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kubectl",
    "workflow-controller",
    "argo",
    "ray-operator",
    "argocd",
)
"""The programs `make k8s-tools` builds into ``<tools>/bin`` (cluster.mk's K8S_TOOL_NAMES)."""


class Cluster:
    def __init__(self, tools: Path, kustomize: Path, state: Path, root: Path = Path()) -> None:
        self.root = root.resolve()
        self.tools = tools.resolve()
        self.bin = self.tools / "bin"
        self.kustomize = kustomize.resolve()
        self.state = state.resolve()
        self.procs = Processes(self.state)
        self.pki = Pki(self.state / "pki")
        self.kubeconfig = self.state / "kubeconfig"
        self.server = f"https://127.0.0.1:{API_PORT}"
        self.argo_server = f"https://127.0.0.1:{ARGO_SERVER_HOST_PORT}"

    # -- helpers ----------------------------------------------------------------------------
    def _env(self, **extra: str) -> dict[str, str]:
        path = f"{self.bin}:{self.kustomize.parent}:/usr/local/bin:/usr/bin:/bin"
        env = {"PATH": path, "HOME": str(self.state / "home"), "KUBECONFIG": str(self.kubeconfig)}
        env["TMPDIR"] = str(self.state / "tmp")
        return {**env, **extra}

    def kubectl(self, *args: str, stdin: str | None = None) -> str:
        argv = [str(self.bin / "kubectl"), "--kubeconfig", str(self.kubeconfig), *args]
        done = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def api_ready(self) -> bool:
        import httpx

        ctx = ssl.create_default_context(cafile=str(self.pki.ca))
        ctx.load_cert_chain(str(self.pki.client_cert), str(self.pki.client_key))
        try:
            r = httpx.get(f"{self.server}/readyz", verify=ctx, timeout=3)
        except httpx.HTTPError:
            return False
        return r.status_code == 200

    # -- up ---------------------------------------------------------------------------------
    def up(self) -> dict[str, float]:
        require("unshare", "nsenter", "ip", "socat", "curl", "openssl", "redis-server", "git")
        if os.geteuid() != 0:
            raise SystemExit("k8s-up makes a network namespace (unshare --net): run it as root")
        missing = [b for b in TOOLS if not (self.bin / b).exists()]
        if missing:
            raise SystemExit(f"{', '.join(missing)} not built in {self.bin}: run make k8s-tools")
        if any(alive(pid) for pid in self.procs.recorded().values()):
            raise SystemExit(f"a control plane already runs from {self.state}: make k8s-down")
        if self.state.exists():
            subprocess.run(["rm", "-rf", str(self.state)], check=True)
        for d in ("home", "tmp", "argocd/ssh", "argocd/tls", "argocd/gpg", "redis"):
            (self.state / d).mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        times: dict[str, float] = {}
        make_pki(self.pki.directory)
        self.kubeconfig.write_text(kubeconfig(self.pki, self.server))
        self.kubeconfig.chmod(0o600)
        relay = self.state / "api.sock"
        self.procs.start_namespace(relay, API_PORT)
        listen = f"TCP-LISTEN:{API_PORT},bind=127.0.0.1,reuseaddr,fork"
        self.procs.start_on_host("host-relay", ["socat", listen, f"UNIX-CONNECT:{relay}"])
        etcd = self.procs.start("etcd", self._etcd(), self._env())
        times["etcd"] = self.procs.wait(
            etcd, self.procs.http_ok(f"http://127.0.0.1:{ETCD_PORT}/health"), 60
        )
        api = self.procs.start("kube-apiserver", self._apiserver(), self._env())
        times["kube-apiserver"] = self.procs.wait(api, self.api_ready, 120)
        s = time.monotonic()
        self._bootstrap()
        times["crds+config"] = time.monotonic() - s
        for name, argv, env, probe in self._controllers():
            started = self.procs.start(name, argv, env)
            times[name] = self.procs.wait(started, probe, 120)
        times["argo-server relay"] = self.procs.relay_to_host(
            "argo-server", ARGO_SERVER_PORT, ARGO_SERVER_HOST_PORT
        )
        times["total"] = time.monotonic() - t0
        info = {"server": self.server, "kubeconfig": str(self.kubeconfig), "bin": str(self.bin),
                "argo_server": self.argo_server, "ca": str(self.pki.ca)}  # fmt: skip
        (self.state / "cluster.json").write_text(json.dumps({**info, "ready_s": times}, indent=1))
        return times

    def _etcd(self) -> list[str]:
        peer = f"http://127.0.0.1:{ETCD_PORT + 1}"
        return [
            str(self.bin / "etcd"),
            "--name=default",
            f"--data-dir={self.state / 'etcd'}",
            f"--listen-client-urls=http://127.0.0.1:{ETCD_PORT}",
            f"--advertise-client-urls=http://127.0.0.1:{ETCD_PORT}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=default={peer}",
            "--unsafe-no-fsync",  # a test cluster, thrown away at k8s-down
            "--log-level=warn",
        ]

    def _apiserver(self) -> list[str]:
        p = self.pki
        return [
            str(self.bin / "kube-apiserver"),
            f"--etcd-servers=http://127.0.0.1:{ETCD_PORT}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            # the `kubernetes` Service's endpoints may not be a loopback address; nothing in
            # the cluster dials it (every controller runs outside with the kubeconfig)
            "--endpoint-reconciler-type=none",
            f"--secure-port={API_PORT}",
            f"--tls-cert-file={p.serving_cert}",
            f"--tls-private-key-file={p.serving_key}",
            f"--client-ca-file={p.ca}",
            "--anonymous-auth=false",
            "--authorization-mode=RBAC",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={p.sa_pub}",
            f"--service-account-signing-key-file={p.sa_key}",
            "--service-cluster-ip-range=10.96.0.0/16",
            f"--cert-dir={p.directory}",
            "--profiling=false",
        ]

    def _bootstrap(self) -> None:
        """Namespaces, every controller's CRDs (established), Argo CD's configuration and the
        Argo Workflows controller's ConfigMap."""
        import yaml

        up = self.tools / "upstream"
        crd_files = [
            f
            for d in ("argo-cd", "argo-workflows", "kuberay")
            for f in sorted((up / d).glob("*.yaml"))
            if f.name != "install.yaml"
        ]
        docs: list[Any] = [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}} for n in NAMESPACES
        ]
        for operator, version in STORED_ONLY.items():
            docs += schema_crds(self.root / "deploy/k8s/schemas", operator, version)
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # install.yaml is 2 MB
        for x in yaml.load_all((up / "argo-cd" / "install.yaml").read_text(), Loader=loader):
            if x and x["kind"] in ("ConfigMap", "Secret"):
                x["metadata"]["namespace"] = "argocd"
                if x["metadata"]["name"] == "argocd-secret":  # as argocd-server would make it
                    x["stringData"] = {"server.secretkey": secrets.token_urlsafe(32)}
                docs.append(x)
        docs.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "workflow-controller-configmap", "namespace": "argo"},
                "data": {"metricsConfig": f"port: {WORKFLOWS_METRICS_PORT}\n"},
            }
        )
        docs.append(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "type": "kubernetes.io/tls",
                "metadata": {"name": ARGO_SERVER_TLS, "namespace": "argo"},
                "stringData": {
                    "tls.crt": self.pki.argo_server_cert.read_text(),
                    "tls.key": self.pki.argo_server_key.read_text(),
                },
            }
        )
        apply = ["apply", "--server-side", "--field-manager=k8s-up"]
        self.kubectl(*apply, *(a for f in crd_files for a in ("-f", str(f))))
        self.kubectl(*apply, "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List",
                                                           "items": docs}))  # fmt: skip
        self.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
        # The `default` project, which argocd-server (not run here) creates at its start.
        default_project = {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "AppProject",
            "metadata": {"name": "default", "namespace": "argocd"},
            "spec": {
                "sourceRepos": ["*"],
                "destinations": [{"server": "*", "namespace": "*"}],
                "clusterResourceWhitelist": [{"group": "*", "kind": "*"}],
            },
        }
        self.kubectl(*apply, "-f", "-", stdin=json.dumps(default_project))

    def _controllers(self) -> list[tuple[str, list[str], dict[str, str], Any]]:
        b, p = self.bin, self.procs
        kc = ["--kubeconfig", str(self.kubeconfig)]
        argocd = self._env(
            ARGOCD_FAKE_IN_CLUSTER="true",
            ARGOCD_GPG_ENABLED="false",
            ARGOCD_ASK_PASS_SOCK=str(self.state / "argocd" / "askpass.sock"),
            ARGOCD_SSH_DATA_PATH=str(self.state / "argocd" / "ssh"),
            ARGOCD_TLS_DATA_PATH=str(self.state / "argocd" / "tls"),
            ARGOCD_GNUPGHOME=str(self.state / "argocd" / "gpg"),
            **ARGOCD_RECONCILIATION,
        )
        repo = f"127.0.0.1:{REPO_SERVER_PORTS[0]}"
        redis = f"127.0.0.1:{REDIS_PORT}"
        loop = "http://127.0.0.1"
        kcm = self.state / "kube-controller-manager"
        return [
            (
                "kube-controller-manager",
                [str(b / "kube-controller-manager"), *kc,
                 f"--authentication-kubeconfig={self.kubeconfig}",
                 f"--authorization-kubeconfig={self.kubeconfig}",
                 f"--controllers={','.join(KUBE_CONTROLLERS)}",
                 f"--service-account-private-key-file={self.pki.sa_key}",
                 f"--root-ca-file={self.pki.ca}",
                 "--use-service-account-credentials=false", "--leader-elect=false",
                 "--bind-address=127.0.0.1", f"--secure-port={CONTROLLER_MANAGER_PORT}",
                 f"--cert-dir={kcm}", "--profiling=false"],
                self._env(),
                # its serving certificate is its own, self-signed: readiness only, no data
                p.command_ok(["curl", "-sfk", "-o", "/dev/null", "--max-time", "2",
                              f"https://127.0.0.1:{CONTROLLER_MANAGER_PORT}/healthz"]),
            ),
            (
                "redis",
                ["redis-server", "--bind", "127.0.0.1", "--port", str(REDIS_PORT), "--save", "",
                 "--appendonly", "no", "--dir", str(self.state / "redis")],
                self._env(),
                p.command_ok(["redis-cli", "-p", str(REDIS_PORT), "ping"]),
            ),
            (
                "argocd-repo-server",
                [str(b / "argocd-repo-server"), "--address", "127.0.0.1",
                 "--port", str(REPO_SERVER_PORTS[0]), "--metrics-address", "127.0.0.1",
                 "--metrics-port", str(REPO_SERVER_PORTS[1]), "--redis", redis],
                argocd,
                p.http_ok(f"{loop}:{REPO_SERVER_PORTS[1]}/healthz"),
            ),
            (
                "argocd-application-controller",
                [str(b / "argocd-application-controller"), *kc, "--namespace", "argocd",
                 "--repo-server", repo, "--redis", redis,
                 "--metrics-port", str(CONTROLLER_METRICS_PORT)],
                argocd,
                p.http_ok(f"{loop}:{CONTROLLER_METRICS_PORT}/healthz"),
            ),
            (
                "argocd-applicationset-controller",
                [str(b / "argocd-applicationset-controller"), *kc, "--namespace", "argocd",
                 "--argocd-repo-server", repo,
                 "--metrics-addr", f"127.0.0.1:{APPSET_PORTS[0]}",
                 "--probe-addr", f"127.0.0.1:{APPSET_PORTS[1]}",
                 "--webhook-addr", f"127.0.0.1:{APPSET_PORTS[2]}"],
                argocd,
                # no health checks are registered on its probe port: its metrics answer once
                # the manager runs
                p.http_ok(f"{loop}:{APPSET_PORTS[0]}/metrics"),
            ),
            (
                "workflow-controller",
                [str(b / "workflow-controller"), *kc, "--namespace", "argo",
                 "--configmap", "workflow-controller-configmap",
                 "--executor-image", WORKFLOW_EXECUTOR],
                self._env(LEADER_ELECTION_IDENTITY="driftloop-k8s"),
                p.http_ok(f"{loop}:6060/healthz"),
            ),
            (
                # client auth: each request's bearer token is its Kubernetes identity; the
                # server's own (the admin kubeconfig here) reads its ConfigMap and TLS Secret
                "argo-server",
                [str(b / "argo"), "server", *kc, "--namespace", "argo",
                 "--auth-mode", "client", "--secure", "--port", str(ARGO_SERVER_PORT),
                 "--tls-certificate-secret-name", ARGO_SERVER_TLS,
                 "--configmap", "workflow-controller-configmap"],
                self._env(),
                p.command_ok(["curl", "-sf", "-o", "/dev/null", "--max-time", "2",
                              "--cacert", str(self.pki.ca),
                              f"https://127.0.0.1:{ARGO_SERVER_PORT}/"]),
            ),
            (
                "ray-operator",
                [str(b / "ray-operator"), "--metrics-addr", f"127.0.0.1:{KUBERAY_PORTS[0]}",
                 "--health-probe-bind-address", f"127.0.0.1:{KUBERAY_PORTS[1]}",
                 "--enable-leader-election=false"],
                self._env(),
                p.http_ok(f"{loop}:{KUBERAY_PORTS[1]}/readyz"),
            ),
        ]  # fmt: skip

    # -- down / status ----------------------------------------------------------------------
    def down(self) -> list[str]:
        return self.procs.stop_all()

    def status(self) -> bool:
        pids = self.procs.recorded()
        ok = bool(pids)
        for name, pid in pids.items():
            up = alive(pid)
            ok = ok and up
            print(f"{name:34} pid {pid:<8} {'running' if up else 'EXITED'}")
        if ok:
            try:
                ok = self.api_ready()
            except OSError:
                ok = False
            print(f"kube-apiserver {self.server}: {'ready' if ok else 'NOT READY'}")
        elif not pids:
            print(f"no control plane recorded in {self.state}")
        return ok


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="driftloop_workflows.k8s.cluster")
    parser.add_argument("--tools", type=Path, required=True, help=".driftloop/tools/k8s-<pins>")
    parser.add_argument("--kustomize", type=Path, required=True)
    parser.add_argument("--state", type=Path, default=Path(".driftloop/k8s"))
    parser.add_argument("--root", type=Path, default=Path(), help="the repository")
    parser.add_argument("command", choices=("up", "down", "status"))
    args = parser.parse_args(argv)
    cluster = Cluster(args.tools, args.kustomize, args.state, args.root)
    if args.command == "up":
        try:
            times = cluster.up()
        except (NotReady, RuntimeError) as e:
            print(f"k8s-up failed: {e}", file=sys.stderr)
            print("stopping what started: " + ", ".join(cluster.down()), file=sys.stderr)
            return 1
        for name, secs in times.items():
            print(f"  {name:34} ready in {secs:5.1f} s")
        print(f"control plane up: KUBECONFIG={cluster.kubeconfig} ({cluster.server})")
        return 0
    if args.command == "down":
        stopped = cluster.down()
        print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
        return 0
    return 0 if cluster.status() else 1


if __name__ == "__main__":
    sys.exit(main())
