"""What the security tests build on: the listening sockets as the kernel reports them, the
Ray processes of the running head, probes of Ray's gRPC and HTTP ports without the
cluster token, and model files an attacker could leave in the model store."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import grpc  # type: ignore[import-untyped]
import httpx
import psutil

from driftloop.models import ModelVersion

LOOPBACK = {"127.0.0.1", "::1"}

# gRPC methods that only read, one or more per kind of Ray server (GCS, raylet node
# manager and object manager, core workers and actors, the dashboard agent, the Ray
# client server, a Serve replica). An empty request is valid protobuf for each of them.
# Without the token every one must be refused (UNAUTHENTICATED) or be absent from that
# server (UNIMPLEMENTED); OK means the server did work for a caller without the token.
READ_ONLY_METHODS = (
    "/ray.rpc.NodeInfoGcsService/GetAllNodeInfo",
    "/ray.rpc.JobInfoGcsService/GetAllJobInfo",
    "/ray.rpc.ActorInfoGcsService/GetAllActorInfo",
    "/ray.rpc.InternalKVGcsService/GetInternalConfig",
    "/ray.rpc.NodeManagerService/GetNodeStats",
    "/ray.rpc.NodeManagerService/GetSystemConfig",
    "/ray.rpc.ObjectManagerService/Pull",
    "/ray.rpc.CoreWorkerService/NumPendingTasks",
    "/ray.rpc.CoreWorkerService/GetCoreWorkerStats",
    "/ray.rpc.ReporterService/HealthCheck",
    "/ray.rpc.LogService/ListLogs",
    "/ray.rpc.RayletDriver/ClusterInfo",
    "/ray.rpc.RayletDriver/ListNamedActors",
    "/ray.serve.ASGIService/HandleRequest",
    "/ray.serve.RayServeAPIService/ListApplications",
)
# Answered without the token by design (liveness only, no work, no data).
HEALTH_METHOD = "/grpc.health.v1.Health/Check"
ALLOWED_WITHOUT_TOKEN = {"UNAUTHENTICATED", "UNIMPLEMENTED"}


def listeners() -> dict[int, dict[int | None, set[str]]]:
    """Every listening TCP socket: port -> pid -> addresses (IPv4-mapped ones unmapped)."""
    found: dict[int, dict[int | None, set[str]]] = {}
    for conn in psutil.net_connections(kind="inet"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr:
            ip = conn.laddr.ip.removeprefix("::ffff:")
            found.setdefault(conn.laddr.port, {}).setdefault(conn.pid, set()).add(ip)
    return found


def addresses(port: int) -> set[str]:
    return set().union(*listeners().get(port, {}).values())


def ray_processes(gcs_port: int) -> dict[int, psutil.Process]:
    """The head's processes: `ray start` (the parent of the GCS on ``gcs_port``) and all
    its descendants (raylet, dashboard and agents, workers, actors, replicas)."""
    owners = {pid for pid in listeners().get(gcs_port, {}) if pid is not None}
    assert owners, f"nothing of ours listens on the GCS port {gcs_port}"
    [gcs] = [psutil.Process(pid) for pid in owners]
    root = gcs.parent()
    assert root is not None
    return {p.pid: p for p in [root, *root.children(recursive=True)]}


def reachable_address(bound: set[str]) -> str:
    """An address other than loopback at which a socket bound to ``bound`` is reached."""
    specific = sorted(a for a in bound if a not in LOOPBACK | {"0.0.0.0", "::"})
    if specific:
        return specific[0]
    for addrs in psutil.net_if_addrs().values():
        for a in addrs:
            if a.family.name == "AF_INET" and a.address not in LOOPBACK:
                return str(a.address)
    raise AssertionError("no non-loopback IPv4 address on this machine")


def grpc_codes(address: str, port: int, token: str | None = None) -> dict[str, str]:
    """Each read-only method (and the health check) called once: method -> status code."""
    metadata = [("authorization", f"Bearer {token}")] if token else None
    codes: dict[str, str] = {}
    with grpc.insecure_channel(f"{address}:{port}") as channel:
        for method in (*READ_ONLY_METHODS, HEALTH_METHOD):
            call = channel.unary_unary(method)
            try:
                call(b"", timeout=5, metadata=metadata)
                codes[method] = "OK"
            except grpc.RpcError as exc:
                codes[method] = exc.code().name
    return codes


@dataclass
class PortVerdict:
    port: int
    process: str
    bound: set[str]
    kind: str  # "grpc-token", "http-token", "metrics-read-only", "unproven"
    detail: dict[str, object] = field(default_factory=dict)


def judge_port(port: int, process: str, bound: set[str]) -> PortVerdict:
    """What a caller without the token gets from a Ray port reachable off loopback."""
    address = reachable_address(bound)
    codes = grpc_codes(address, port)
    work = {m: c for m, c in codes.items() if m != HEALTH_METHOD}
    if "UNAUTHENTICATED" in work.values() or set(work.values()) == {"UNIMPLEMENTED"}:
        kind = "grpc-token" if "UNAUTHENTICATED" in work.values() else "unproven"
        if not set(work.values()) <= ALLOWED_WITHOUT_TOKEN:
            kind = "grpc-OPEN"
        return PortVerdict(port, process, bound, kind, {"codes": work})
    if set(work.values()) != {"UNAVAILABLE"}:
        return PortVerdict(port, process, bound, "grpc-OPEN", {"codes": work})
    # Not gRPC (an HTTP/1 server resets an HTTP/2 preface): ask it over HTTP.
    base = f"http://{address}:{port}"
    with httpx.Client(timeout=10) as client:
        get = client.get(f"{base}/api/version")
        post = client.post(f"{base}/api/job_agent/jobs/", json={"entrypoint": "true"})
        put = client.put(f"{base}/api/serve/applications/", json={"applications": "nope"})
        detail: dict[str, object] = {"GET": get.status_code, "POST": post.status_code,
                                     "PUT": put.status_code}  # fmt: skip
        if {get.status_code, post.status_code, put.status_code} <= {401, 403}:
            return PortVerdict(port, process, bound, "http-token", detail)
        metrics = client.get(f"{base}/metrics")
        detail["GET /metrics"] = metrics.status_code
        if (
            metrics.status_code == 200
            and metrics.text.startswith("# HELP")
            and {post.status_code, put.status_code} <= {405, 501}
        ):
            detail["metrics_bytes"] = len(metrics.content)
            return PortVerdict(port, process, bound, "metrics-read-only", detail)
    return PortVerdict(port, process, bound, "http-OPEN", detail)


def untokened_env(home: Path) -> dict[str, str]:
    """This process's environment without any way to find the Ray token: no RAY_* variable
    and a home directory without ~/.ray/auth_token."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env["HOME"] = str(home)
    return env


SHORT_CONNECT_WINDOWS = {
    "RAY_NUM_REDIS_GET_RETRIES": "3",  # a driver's tries to reach the GCS, ~1 s apart
    "RAY_CLIENT_INITIAL_CONNECTION_TIMEOUT_S": "1",  # a Ray Client's 3 tries, 1 s apart
    "RAY_CLIENT_MAX_CONNECTION_TIMEOUT_S": "1",
}
"""Ray's client-side connect windows, shortened for processes expected to be refused."""


def run(
    args: list[str], env: dict[str, str], timeout_s: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, env=env, capture_output=True, text=True, timeout=timeout_s, check=False
    )


def touch_command(marker: Path) -> str:
    return f"{sys.executable} -c \"import pathlib; pathlib.Path('{marker}').touch()\""


def never_appears(marker: Path, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if marker.exists():
            return False
        time.sleep(0.25)
    return not marker.exists()


# -- model files an attacker could leave ----------------------------------------------------


class Touch:
    """Unpickling this creates ``marker`` (``pathlib.Path(marker).touch()``)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return (Path.touch, (Path(self.marker),))


def marker_pickle(marker: Path, protocol: int) -> bytes:
    return pickle.dumps(Touch(marker), protocol=protocol)


def forge_version(
    store_root: Path, source: ModelVersion, payload: bytes, model_file: str
) -> tuple[str, str]:
    """A complete version written straight into the store (as someone with write access to
    it could): ``source``'s files with ``payload`` as its model file, every digest in
    ``_COMPLETE`` and ``metadata.json`` made to agree. Returns (version id, sha256)."""
    digest = hashlib.sha256(payload).hexdigest()
    version = f"sha256-{digest[:16]}"
    src = store_root / source.name / source.version
    dst = store_root / source.name / version
    shutil.copytree(src, dst)
    (dst / source.model_file).unlink()
    (dst / model_file).write_bytes(payload)
    metadata = json.loads((dst / "metadata.json").read_text())
    metadata.update(version=version, sha256=digest)
    (dst / "metadata.json").write_text(json.dumps(metadata))
    manifest = json.loads((dst / "_COMPLETE").read_text())
    files = dict(manifest["files"])
    del files[source.model_file]
    files[model_file] = digest
    if "metadata.json" in files:
        files["metadata.json"] = hashlib.sha256((dst / "metadata.json").read_bytes()).hexdigest()
    manifest.update(version=version, sha256=digest, model_file=model_file, files=files)
    (dst / "_COMPLETE").write_text(json.dumps(manifest))
    return version, digest


def flip_one_digit(data: bytes) -> tuple[bytes, int]:
    """``data`` with the lowest bit of one digit flipped ('3' -> '2'): still valid JSON, a
    model XGBoost would load, but not the bytes the digest names."""
    start = data.index(b'"split_conditions"')
    at = next(i for i in range(start, len(data)) if 0x31 <= data[i] <= 0x38)
    tampered = bytearray(data)
    tampered[at] ^= 0x01
    return bytes(tampered), at


# -- the scoring service's API key -----------------------------------------------------------


def assert_key_guards(url: str, key: str) -> Counter[int]:
    """Every scoring route of the application at ``url`` (serving a model) answers 401 to
    a missing, empty or near-miss key, and to the key in another header or the query
    string; 200 to ``key`` in X-API-Key; /healthz needs no key. The status counts."""
    from tests.integration.serving_support import transaction

    body = transaction(1)
    routes = [("POST", "/predict", body), ("POST", "/predict/batch", {"transactions": [body]}),
              ("GET", "/model", None)]  # fmt: skip
    other_first = "y" if key[0] == "x" else "x"  # a generated key may start with x
    wrong = [None, "", key.upper(), key[:-1], key + "x", f"Bearer {key}", other_first + key[1:]]
    counts: Counter[int] = Counter()
    with httpx.Client(base_url=url, timeout=30) as client:
        for method, path, payload in routes:
            for bad in wrong:
                headers = {} if bad is None else {"X-API-Key": bad}
                r = client.request(method, path, json=payload, headers=headers)
                assert r.status_code == 401, (path, bad, r.status_code, r.text)
                counts[r.status_code] += 1
            # The key in another header or the query string does not count either.
            r = client.request(method, path, json=payload, headers={"Authorization": key},
                               params={"api_key": key, "X-API-Key": key})  # fmt: skip
            assert r.status_code == 401
            r = client.request(method, path, json=payload, headers={"X-API-Key": key})
            assert r.status_code == 200, (path, r.text)
            counts[r.status_code] += 1
        assert client.get("/healthz").status_code == 200
    return counts
