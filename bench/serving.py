"""The fraud endpoint against its own floors, all measured in the same run on the same
transactions, model and online store (the goals of the serving issue in brackets):

* ``inprocess``: ``ActiveModel.score`` called directly: one payment with its online
  features [p50 <= 0.5 ms] and a batch of 256 [p50 <= 5 ms];
* on one Ray Serve replica with the limits of the shipped ``serve.yaml``:
  ``POST /predict`` against ``GET /healthz`` at 1 client [p50 ratio <= 1.5] and at 32
  clients [no request refused; throughput ratio >= 0.7; p99 ratio <= 1.5];
  ``/predict/batch`` with 256 payments a request [>= 5,000 payments/s];
* Serve's own floor: a deployment that answers a constant, to a GET and to a POST of the
  same body (through Serve's Python proxy a replica fetched a request's body with a call
  back to the proxy, which a GET never made; through its HAProxy ingress, which the stack
  runs, the body comes with the request to the replica's own HTTP port);
* the same replica with its telemetry off (no prediction log, no per-score metrics): what
  they cost the request;
* ``uvicorn``: the very same FastAPI app and scorer under uvicorn in a process of its own
  [Serve >= 0.7x its predict throughput at 32 clients].

The load generator is this process (httpx, asyncio) on the same 2 cores, so every figure
is a ratio against a baseline it drove the same way. Needs the stack (`make up`); uses its
own topics, Feast repo, model store and Serve applications, all removed at the end."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from bench._common import percentiles, record
from driftloop.events import Transaction
from driftloop.kafka import connect_admin, ensure_topics
from driftloop.settings import TOPICS, Settings
from tests.integration import serving_support as support

ROOT = Path(__file__).resolve().parent.parent
KEY = "bench"
LOAD = {1: 400, 32: 2_000}  # requests per run, by clients
BATCH, BATCH_REQUESTS, BATCH_CLIENTS = 256, 60, 2


def bodies(n: int, offset: int = 0) -> list[dict[str, Any]]:
    """The same mix for every target: mostly known customers, some unknown."""
    out = []
    for i in range(offset, offset + n):
        customer = support.CUSTOMERS[i % len(support.CUSTOMERS)] if i % 10 else f"new-{i}"
        out.append(support.transaction(i, customer, support.MERCHANTS[i % len(support.MERCHANTS)]))
    return out


async def _drive(url: str, clients: int, n: int, payloads: list[Any] | None) -> dict[str, float]:
    """``n`` requests by ``clients`` concurrent clients (GET when ``payloads`` is None)."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=30, limits=limits, headers={"X-API-Key": KEY}) as c:

        async def one(i: int) -> int:
            if payloads is None:
                return (await c.get(url)).status_code
            return (await c.post(url, json=payloads[i % len(payloads)])).status_code

        await asyncio.gather(*(one(i) for i in range(clients)))  # warm every connection
        queue = iter(range(n))

        async def client() -> None:
            for i in queue:
                started = time.perf_counter()
                status = await one(i)
                latencies.append(time.perf_counter() - started)
                statuses[status] = statuses.get(status, 0) + 1

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        elapsed = time.perf_counter() - started
    p = percentiles(latencies)
    return {
        "p50_ms": p["p50"] * 1e3,
        "p99_ms": p["p99"] * 1e3,
        "rps": n / elapsed,
        "refused": float(statuses.get(503, 0)),
        "failed": float(sum(v for s, v in statuses.items() if s != 200)),
    }


def drive(url: str, clients: int, n: int, payloads: list[Any] | None) -> dict[str, float]:
    return asyncio.run(_drive(url, clients, n, payloads))


def inprocess(settings: Settings, config: dict[str, Any]) -> dict[str, float]:
    from driftloop_serving import ModelSlot

    slot = ModelSlot(settings)
    slot.apply(config)
    active = slot.active
    assert active is not None
    txns = [Transaction.model_validate(b) for b in bodies(2 * BATCH)]
    one, many = [], []
    for i in range(3_000):
        started = time.perf_counter()
        active.score(txns[i % len(txns) : i % len(txns) + 1])
        one.append(time.perf_counter() - started)
    for i in range(300):
        started = time.perf_counter()
        active.score(txns[(i % 2) * BATCH : (i % 2 + 1) * BATCH])
        many.append(time.perf_counter() - started)
    p1, pb = percentiles(one), percentiles(many)
    return {
        "one_p50_ms": p1["p50"] * 1e3,
        "one_p99_ms": p1["p99"] * 1e3,
        "batch256_p50_ms": pb["p50"] * 1e3,
        "batch256_p99_ms": pb["p99"] * 1e3,
    }


def uvicorn_server(state: str, port: int, args_json: str, config_json: str) -> None:
    """The same app under uvicorn (runs in a child process)."""
    import uvicorn
    from driftloop_serving import ServeArgs
    from driftloop_serving._http import build_http
    from driftloop_serving._service import FraudServiceImpl

    service = FraudServiceImpl(ServeArgs.model_validate(json.loads(args_json)))
    service.reconfigure(json.loads(config_json))
    uvicorn.run(build_http(service), host="127.0.0.1", port=port, log_level="warning")


def constant_app() -> Any:
    from ray import serve
    from starlette.requests import Request
    from starlette.responses import JSONResponse

    class Constant:
        async def __call__(self, request: Request) -> JSONResponse:
            if request.method == "POST":
                await request.body()
            return JSONResponse({"score": 0.5})

    options = serve.deployment(ray_actor_options={"num_cpus": 0}, max_ongoing_requests=256)
    return options(Constant).bind()


def floor(base: str) -> dict[str, dict[str, float]]:
    singles = bodies(LOAD[32] + 64)
    out = {}
    for clients in (1, 32):
        out[f"get_c{clients}"] = drive(base, clients, LOAD[clients], None)
        out[f"post_c{clients}"] = drive(base, clients, LOAD[clients], singles)
    return out


def _counted(base: str, in_ray: bool) -> tuple[float, float]:
    """(payments scored, model calls) so far: the decisions counter and the batch-size
    histogram's count, from Ray's exporter for a replica, else from the app's /metrics."""
    names = ("driftloop_serving_decisions_total", "driftloop_serving_batch_size_count")
    if in_ray:
        rows, calls = (support.metric(base, name) for name in names)
        return rows, calls
    text = httpx.get(f"{base}/metrics", timeout=30).text
    rows, calls = (support.sample_sum(text, name) for name in names)
    return rows, calls


def target(base: str, in_ray: bool = True) -> dict[str, dict[str, float]]:
    """Every load of the issue's goals against one deployment at ``base``, and the mean
    number of payments per model call at 32 clients (batches filling under load)."""
    singles = bodies(LOAD[32] + 64)
    batches = [{"transactions": bodies(BATCH, offset=BATCH * i)} for i in range(8)]
    out = {}
    for clients in (1, 32):
        out[f"healthz_c{clients}"] = drive(f"{base}/healthz", clients, LOAD[clients], None)
        before = _counted(base, in_ray) if clients == 32 else (0.0, 0.0)
        out[f"predict_c{clients}"] = drive(f"{base}/predict", clients, LOAD[clients], singles)
        if clients == 32:
            rows, calls = (a - b for a, b in zip(_counted(base, in_ray), before, strict=True))
            out["predict_c32"]["payments_per_model_call"] = rows / calls if calls else 0.0
    batch = drive(f"{base}/predict/batch", BATCH_CLIENTS, BATCH_REQUESTS, batches)
    batch["payments_per_s"] = batch["rps"] * BATCH
    out["batch256"] = batch
    return out


def main() -> None:
    from ray import serve

    tmp = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    base = Settings().model_copy(update={"topic_prefix": f"bench-{uuid.uuid4().hex[:6]}."})
    ensure_topics(base)
    settings = support.feature_repo(base, tmp, base.topic_prefix)
    version = support.put_model(settings, support.fraud_features(settings), 1, 0.5)
    config = support.user_config(version)
    support.connect_ray(settings)
    args = support.serve_args(settings, api_key=KEY)
    apps = {n: support.app_name() for n in ("serve", "serve_quiet", "serve_constant")}
    port = support.closed_port()
    server = subprocess.Popen(
        [sys.executable, __file__, "--uvicorn", str(tmp), str(port), json.dumps(args),
         json.dumps(config)],
        cwd=ROOT, env={**os.environ}, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    results: dict[str, Any] = {}
    try:
        uvicorn_base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                httpx.get(f"{uvicorn_base}/healthz", timeout=5).raise_for_status()
                break
            except (httpx.TransportError, httpx.HTTPStatusError):
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.5)
        shipped = support.shipped_options()
        support.deploy(apps["serve"], args, config, **shipped)
        support.deploy(apps["serve_quiet"], {**args, "telemetry": False}, config, **shipped)
        constant = apps["serve_constant"]
        serve.run(constant_app(), name=constant, route_prefix=f"/{constant}")
        results["inprocess"] = inprocess(settings, config)
        results["serve"] = target(f"{settings.serve_url}/{apps['serve']}")
        results["serve_quiet"] = target(f"{settings.serve_url}/{apps['serve_quiet']}")
        results["uvicorn"] = target(uvicorn_base, in_ray=False)
        results["serve_constant"] = floor(f"{settings.serve_url}/{constant}")
    finally:
        server.terminate()
        server.wait(timeout=30)
        for name in apps.values():
            serve.delete(name)
        admin = connect_admin(base)
        admin.delete_topics([base.topic(t) for t in TOPICS])
        admin.close()
    flat: dict[str, Any] = {f"inprocess_{k}": v for k, v in results["inprocess"].items()}
    for name in ("serve", "serve_quiet", "uvicorn", "serve_constant"):
        for load, numbers in results[name].items():
            for key, value in numbers.items():
                flat[f"{name}_{load}_{key}"] = value
    s, q, u = results["serve"], results["serve_quiet"], results["uvicorn"]
    k = results["serve_constant"]
    p50 = "p50_ms"
    flat["ratio_c1_p50_predict_over_healthz"] = s["predict_c1"][p50] / s["healthz_c1"][p50]
    flat["ratio_c32_rps_predict_over_healthz"] = s["predict_c32"]["rps"] / s["healthz_c32"]["rps"]
    flat["ratio_c32_p99_predict_over_healthz"] = (
        s["predict_c32"]["p99_ms"] / s["healthz_c32"]["p99_ms"]
    )
    flat["refused_c32_predict_and_healthz"] = (
        s["predict_c32"]["refused"] + s["healthz_c32"]["refused"]
    )
    flat["ratio_c1_p50_predict_over_constant_post"] = s["predict_c1"][p50] / k["post_c1"][p50]
    flat["ratio_c1_p50_constant_post_over_get"] = k["post_c1"][p50] / k["get_c1"][p50]
    rps = "rps"
    flat["ratio_c32_rps_predict_over_constant_post"] = s["predict_c32"][rps] / k["post_c32"][rps]
    flat["batch256_payments_per_s"] = s["batch256"]["payments_per_s"]
    flat["ratio_c32_rps_serve_over_uvicorn"] = s["predict_c32"]["rps"] / u["predict_c32"]["rps"]
    flat["ratio_c1_p50_telemetry_on_over_off"] = s["predict_c1"][p50] / q["predict_c1"][p50]
    flat["ratio_c32_rps_telemetry_on_over_off"] = s["predict_c32"]["rps"] / q["predict_c32"]["rps"]
    record("serving", flat)


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "--uvicorn":
        uvicorn_server(sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5])
    else:
        main()
