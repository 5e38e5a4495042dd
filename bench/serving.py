"""HTTP predict latency (p50/p99) and throughput at concurrency 1 and 16: the fraud app on
Ray Serve (batched and unbatched) against three baselines measured in the same run, on the
same transactions, model and online store:

* ``inprocess``: ``score_batch`` called directly (the floor: features + model, no HTTP);
* ``serve_constant``: a Ray Serve endpoint that returns a constant (Serve's own cost here);
* ``uvicorn``: the same model and feature lookup in a plain FastAPI app under uvicorn, in a
  process of its own (what a user might write instead of Serve).

Needs the stack (`make up`). Uses its own topics, Feast repo and model store under a temp
directory, and its own Serve applications, all removed at the end."""

from __future__ import annotations

import asyncio
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

ROOT = Path(__file__).resolve().parents[1]
REQUESTS = {1: 150, 16: 600}
KEY = "bench"


def bodies(n: int) -> list[dict[str, Any]]:
    """The same mix for every target: mostly known customers, some unknown."""
    out = []
    for i in range(n):
        customer = support.CUSTOMERS[i % len(support.CUSTOMERS)] if i % 10 else f"new-{i}"
        out.append(support.transaction(i, customer, support.MERCHANTS[i % len(support.MERCHANTS)]))
    return out


async def _drive(url: str, concurrency: int, n: int) -> dict[str, float]:
    payloads = bodies(n + concurrency)
    latencies: list[float] = []
    failures = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=30, limits=limits, headers={"X-API-Key": KEY}) as c:
        for body in payloads[:concurrency]:  # warm every connection
            await c.post(url, json=body)
        queue = iter(payloads[concurrency:])

        async def worker() -> None:
            nonlocal failures
            for body in queue:
                started = time.perf_counter()
                r = await c.post(url, json=body)
                latencies.append(time.perf_counter() - started)
                failures += r.status_code != 200

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    p = percentiles(latencies)
    return {
        "p50_ms": p["p50"] * 1e3,
        "p99_ms": p["p99"] * 1e3,
        "rps": n / elapsed,
        "failed": float(failures),
    }


def inprocess(settings: Settings, config: dict[str, Any]) -> dict[str, dict[str, float]]:
    from driftloop_serving import ModelSlot, score_batch

    slot = ModelSlot(settings)
    slot.apply(config)
    assert slot.active is not None
    txns = [Transaction.model_validate(b) for b in bodies(REQUESTS[1] + 16)]
    out = {}
    for concurrency in (1, 16):  # 16: one call scores 16 rows, as a full batch would
        latencies = []
        calls = REQUESTS[concurrency] // concurrency
        started = time.perf_counter()
        for i in range(calls):
            t0 = time.perf_counter()
            score_batch(slot.active, txns[i % REQUESTS[1] : i % REQUESTS[1] + concurrency])
            latencies.append(time.perf_counter() - t0)
        elapsed = time.perf_counter() - started
        p = percentiles(latencies)
        out[f"c{concurrency}"] = {
            "p50_ms": p["p50"] * 1e3,
            "p99_ms": p["p99"] * 1e3,
            "rps": calls * concurrency / elapsed,
            "failed": 0.0,
        }
    return out


def uvicorn_server(state: str, port: int, config_json: str) -> None:
    """The plain FastAPI + uvicorn baseline (runs in a child process)."""
    import json

    import uvicorn
    from driftloop_serving import ModelSlot, score_batch
    from fastapi import FastAPI

    root = Path(state)
    settings = Settings(
        state_dir=root / "state",
        feature_env="local",
        feature_data_uri=str(root / "features"),
        model_store_uri=str(root / "models"),
    )
    slot = ModelSlot(settings)
    slot.apply(json.loads(config_json))
    app = FastAPI()

    @app.post("/predict")
    def predict(txn: Transaction) -> dict[str, Any]:
        assert slot.active is not None
        [scored] = score_batch(slot.active, [txn])
        return {"score": scored.score, "decision": scored.decision}

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def constant_app() -> Any:
    from ray import serve

    class Constant:
        async def __call__(self, request: Any) -> dict[str, float]:
            await request.body()
            return {"score": 0.5}

    options = serve.deployment(ray_actor_options={"num_cpus": 0}, max_ongoing_requests=64)
    return options(Constant).bind()


def main() -> None:
    import json

    from ray import serve

    tmp = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    base = Settings().model_copy(update={"topic_prefix": f"bench-{uuid.uuid4().hex[:6]}."})
    ensure_topics(base)
    settings = support.feature_repo(base, tmp, base.topic_prefix)
    version = support.put_model(settings, support.fraud_features(settings), 1, 0.5)
    config = support.user_config(version)
    support.connect_ray(settings)
    apps = {
        "batched": support.app_name(),
        "unbatched": support.app_name(),
        "serve_constant": support.app_name(),
    }
    port = support.closed_port()
    server = subprocess.Popen(
        [sys.executable, __file__, "--uvicorn", str(tmp), str(port), json.dumps(config)],
        cwd=ROOT,
        env={**os.environ},
        stderr=subprocess.DEVNULL,
    )
    results: dict[str, Any] = {}
    try:
        uvicorn_url = f"http://127.0.0.1:{port}/predict"
        deadline = time.monotonic() + 120
        while True:
            try:
                httpx.post(uvicorn_url, json=bodies(1)[0], timeout=5).raise_for_status()
                break
            except httpx.TransportError:  # not listening yet
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.5)
        args = support.serve_args(settings, api_key=KEY)
        support.deploy(apps["batched"], args, config)
        support.deploy(apps["unbatched"], {**args, "max_batch_size": 1}, config)
        serve.run(
            constant_app(), name=apps["serve_constant"], route_prefix=f"/{apps['serve_constant']}"
        )
        results["inprocess"] = inprocess(settings, config)
        urls = {
            "serve_batched": f"{settings.serve_url}/{apps['batched']}/predict",
            "serve_unbatched": f"{settings.serve_url}/{apps['unbatched']}/predict",
            "serve_constant": f"{settings.serve_url}/{apps['serve_constant']}",
            "uvicorn": uvicorn_url,
        }
        for name, url in urls.items():
            results[name] = {f"c{c}": asyncio.run(_drive(url, c, REQUESTS[c])) for c in REQUESTS}
    finally:
        server.terminate()
        server.wait(timeout=30)
        for name in apps.values():
            serve.delete(name)
        admin = connect_admin(base)
        admin.delete_topics([base.topic(t) for t in TOPICS])
        admin.close()
    flat: dict[str, Any] = {}
    for target, by_c in results.items():
        for c, numbers in by_c.items():
            for key, value in numbers.items():
                flat[f"{target}_{c}_{key}"] = value
    for c in ("c1", "c16"):
        b = results["serve_batched"][c]
        for baseline in ("inprocess", "serve_constant", "uvicorn", "serve_unbatched"):
            other = results[baseline][c]
            flat[f"ratio_{c}_p50_batched_over_{baseline}"] = b["p50_ms"] / other["p50_ms"]
            flat[f"ratio_{c}_rps_batched_over_{baseline}"] = b["rps"] / other["rps"]
    record("serving", flat)


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--uvicorn":
        uvicorn_server(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    else:
        main()
