"""What the serving tests build on: a small Feast repository with known customers and
merchants online, small XGBoost models stored with fraud_v1's features, and Serve
applications of our own on the shared cluster (deployed the way Ray deploys serve.yaml).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

import httpx
import numpy as np
import pandas as pd
import yaml

from driftloop.apikey import client_headers
from driftloop.features import aggregate_rows_frame, apply_repo, open_store
from driftloop.models import (
    Feature,
    FeatureSpec,
    ModelStore,
    ModelVersion,
    categorical_preprocessing,
    encode_features,
)
from driftloop.settings import Settings
from tests.samples import sample_lineage

SERVICE = "fraud_v1"
REPORT_MS = 500  # how often the tests' replicas report metrics to Ray (see deploy)
STILL_S = 2.5  # a metric unchanged this long at Ray's exporter has everything counted
EXCLUDED = {"last_txn_unix"}  # as deploy/apps/fraud/model.yaml excludes it
CATEGORIES = ["electronics", "fuel", "grocery", "travel"]
CUSTOMERS = [f"c{i}" for i in range(20)]
MERCHANTS = [f"m{i}" for i in range(10)]
CUSTOMER_AGE_S = 60.0
MERCHANT_AGE_S = 3600.0
# Ray picks a deployment's code version from the config; pinned here as the controller
# pins it for a config deploy, so a user_config change is an in-place reconfigure.
CODE_VERSION = "serving-tests"
WORKSPACE = Path(__file__).resolve().parents[2]
REPLICA_SOURCES = ("libs/driftloop/src", "services/serving/src")
"""The packages a Serve replica imports, under this checkout."""


def feature_repo(base: Settings, root: Path, topic_prefix: str) -> Settings:
    """Settings of a fresh local Feast repo with every known entity online; its
    customer features are CUSTOMER_AGE_S old, its merchant features MERCHANT_AGE_S."""
    settings = base.model_copy(
        update={
            "state_dir": root / "state",
            "feature_env": "local",
            "feature_data_uri": str(root / "features"),
            "model_store_uri": str(root / "models"),
            "topic_prefix": topic_prefix,
        }
    )
    apply_repo(settings)
    store = open_store(settings)
    now = time.time()
    rows = [
        {"customer_id": c, "event_timestamp": now - CUSTOMER_AGE_S, "txn_count_1h": 1,
         "txn_count_24h": 3 + i, "txn_count_7d": 9 + i, "amount_mean_24h": 30.0,
         "amount_max_24h": 80.0, "amount_mean_7d": 40.0, "amount_max_7d": 120.0,
         "distinct_merchants_24h": 2, "distinct_devices_7d": 1, "foreign_share_7d": 0.1,
         "online_share_24h": 0.3, "last_txn_unix": now - 3 * 3600}
        for i, c in enumerate(CUSTOMERS)
    ]  # fmt: skip
    store.push("customer_aggregates_push", aggregate_rows_frame(rows, datetime.now(UTC)))
    stamp = pd.Timestamp(now - MERCHANT_AGE_S, unit="s", tz="UTC")
    merchants = pd.DataFrame(
        {
            "merchant_id": MERCHANTS,
            "event_timestamp": stamp,
            "created": stamp,
            "merchant_category": [CATEGORIES[i % len(CATEGORIES)] for i in range(len(MERCHANTS))],
            "merchant_txn_count_30d": np.arange(len(MERCHANTS), dtype="int64") * 10 + 5,
            "merchant_fraud_rate_30d": np.linspace(0.0, 0.05, len(MERCHANTS)),
        }
    )
    store.write_to_online_store("merchant_stats", merchants)
    return settings


def fraud_features(settings: Settings) -> FeatureSpec:
    """fraud_v1's features less the excluded ones, typed as training types them."""
    store = open_store(settings)
    features = []
    for projection in store.get_feature_service(SERVICE).feature_view_projections:
        for field in projection.features:
            if field.name in EXCLUDED:
                continue
            name = str(field.dtype).lower()
            kind = "categorical" if "string" in name else "int" if "int" in name else "float"
            features.append(Feature(name=field.name, type=kind))
    return FeatureSpec(
        features=features,
        preprocessing=categorical_preprocessing({"merchant_category": CATEGORIES}),
    )


def train_booster(spec: FeatureSpec, seed: int, rounds: int = 15, learned: bool = True) -> bytes:
    """An XGBoost model in its JSON format: fraud where the amount is far above the mean
    (``amount_to_mean_7d`` > 6); with ``learned`` False, trained on those labels shuffled
    (the same fraud rate, no tie to the features): a model deliberately worse."""
    import xgboost

    rng = np.random.default_rng(seed)
    n = 600
    frame = pd.DataFrame({f.name: rng.gamma(2.0, 2.0, n) for f in spec.features})
    frame["merchant_category"] = rng.choice(CATEGORIES, n)
    frame["is_foreign"] = rng.integers(0, 2, n)
    frame["hour_of_day"] = rng.integers(0, 24, n)
    label = (frame["amount_to_mean_7d"] > 6).astype(int) | (rng.random(n) < 0.03)
    if not learned:
        label = pd.Series(rng.permutation(label.to_numpy()), index=frame.index)
    matrix = xgboost.DMatrix(encode_features(frame, spec), label=label, feature_names=spec.names)
    params = {"objective": "binary:logistic", "max_depth": 3, "seed": seed, "nthread": 1}
    booster = xgboost.train(params, matrix, num_boost_round=rounds)
    return bytes(booster.save_raw("json"))


def put_model(
    settings: Settings, spec: FeatureSpec, seed: int, threshold: float, learned: bool = True
) -> ModelVersion:
    return ModelStore(settings.model_store).put(
        "fraud", train_booster(spec, seed, learned=learned), filename="model.json", features=spec,
        lineage=sample_lineage(seed, threshold, SERVICE),
    )  # fmt: skip


def stack_headers() -> dict[str, str]:
    """X-API-Key with the stack's key (``make up`` made it; the Ray head gives its replicas
    the file's path): what a deployment without an ``api_key`` of its own requires."""
    return client_headers(Settings())


def serve_args(settings: Settings, **extra: Any) -> dict[str, Any]:
    """ServeArgs (as serve.yaml's args) pointing a deployment at the test's own state; its
    API key is the stack's (:func:`stack_headers`) unless ``extra`` sets one, or auth off."""
    return {
        "topic_prefix": settings.topic_prefix,
        "model_store_uri": settings.model_store,
        "feature_env": settings.feature_env,
        "feature_data_uri": settings.feature_data,
        "state_dir": str(settings.state_dir),
        **extra,
    }


def user_config(version: ModelVersion | None, **extra: Any) -> dict[str, Any]:
    if version is None:
        return {}
    return {
        "model_uri": f"models:/{version.name}/{version.version}",
        "model_digest": version.sha256,
        **extra,
    }


def connect_ray(settings: Settings) -> None:
    import ray

    from driftloop.raycluster import enable_token_auth

    if not ray.is_initialized():
        enable_token_auth(settings)
        ray.init(address=settings.ray_gcs_address, log_to_driver=False)


def app_name() -> str:
    return f"fraud-it-{uuid.uuid4().hex[:8]}"


def deploy(
    name: str,
    args: Mapping[str, Any],
    config: Mapping[str, Any],
    env: Mapping[str, str] | None = None,
    *,
    num_replicas: int = 1,
    **options: Any,
) -> None:
    """Deploy (or update in place) application ``name`` at ``/<name>`` with
    ``num_replicas`` replicas that need no CPU reservation (the cluster's CPUs belong to
    everyone's jobs); ``env`` is added to the replicas' environment and ``options`` (e.g.
    ``max_ongoing_requests``, ``max_queued_requests``) to the deployment's."""
    from driftloop_serving import ServeArgs, build_app
    from ray import serve
    from ray.serve import Application

    actor: dict[str, Any] = {"num_cpus": 0}
    # Replicas report their metrics to Ray's exporter every REPORT_MS (Ray's default is
    # 10 s): the tests read a replica's counters there, its one metrics sink. PYTHONPATH:
    # a replica runs this checkout's serving code, not that of the checkout whose venv
    # started Ray (the same one unless the tests run from another clone of the repo).
    actor["runtime_env"] = {
        "env_vars": {
            "RAY_metrics_report_interval_ms": str(REPORT_MS),
            "PYTHONPATH": os.pathsep.join(str(WORKSPACE / d) for d in REPLICA_SOURCES),
            **dict(env or {}),
        }
    }
    app = build_app(ServeArgs.model_validate(dict(args)))
    deployment = app._bound_deployment.options(
        user_config=dict(config), num_replicas=num_replicas, ray_actor_options=actor,
        version=CODE_VERSION, _internal=True, **options,
    )  # fmt: skip
    serve.run(Application(deployment), name=name, route_prefix=f"/{name}")


def transaction(
    i: int, customer: str = "c1", merchant: str = "m1", **fields: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "transaction_id": f"t-{uuid.uuid4().hex[:12]}-{i}", "customer_id": customer,
        "merchant_id": merchant, "amount": 42.5, "currency": "EUR",
        "merchant_category": "grocery", "channel": "pos", "country": "DE",
        "card_country": "DE", "device_id": "d1",
        "event_time": datetime.now(UTC).isoformat(),
    }  # fmt: skip
    body.update(fields)
    return body


def sample_sum(text: str, name: str, labels: Mapping[str, str] | None = None) -> float:
    """The sum of the samples called ``name`` that carry ``labels`` in a Prometheus text
    exposition (0 when there are none). Only that name's lines go to prometheus_client's
    parser: a Ray exporter's whole page takes it about half a second, and readings poll."""
    from prometheus_client.parser import text_string_to_metric_families

    lines = [line for line in text.splitlines() if line.startswith((f"{name}{{", f"{name} "))]
    wanted = (labels or {}).items()
    return sum(
        sample.value
        for family in text_string_to_metric_families("\n".join(lines))
        for sample in family.samples
        if sample.name == name and wanted <= sample.labels.items()
    )


def metric(url: str, sample: str, at_least: float | None = None) -> float:
    """One sample of the application at ``url`` (e.g. ``'x_total{a="b"}'``, summed over its
    replicas; 0 when absent) at Ray's metrics exporter, its replicas' one metrics sink.

    A count reaches the exporter about a second after it was made (replicas report every
    REPORT_MS, the node's agent exports what it got). So the value returned is the first
    one ``>= at_least`` when given (or the last after 60 s), otherwise the value once it
    has stood still for STILL_S: a value read sooner may miss what was just counted."""
    import ray

    app = url.rstrip("/").rsplit("/", 1)[-1]
    name, _, labels = sample.partition("{")
    wanted = {"application": app}
    for label in filter(None, labels.rstrip("}").split(",")):
        key, _, given = label.partition("=")
        wanted[key] = given.strip('"')
    [node] = [n for n in ray.nodes() if n["Alive"]]  # type: ignore[no-untyped-call]
    exporter = f"http://127.0.0.1:{node['MetricsExportPort']}/metrics"

    def read() -> float:
        return sample_sum(httpx.get(exporter, timeout=30).text, f"ray_{name}", wanted)

    value, since = read(), time.monotonic()
    deadline = since + 60
    while time.monotonic() < deadline:
        if at_least is not None and value >= at_least:
            break
        if at_least is None and time.monotonic() - since >= STILL_S:
            break
        time.sleep(0.2)
        again = read()
        if again != value:
            value, since = again, time.monotonic()
    return value


def read_predictions(
    settings: Settings, want: int, keep: Callable[[Any], bool] = lambda p: True,
    timeout_s: float = 60,
) -> list[Any]:  # fmt: skip
    """The ``predictions`` topic's events that ``keep`` accepts, read by a new consumer
    group until ``want`` of them came, then one more poll (to catch any extra)."""
    from driftloop.events import Prediction
    from driftloop.kafka import EventConsumer

    got: list[Prediction] = []
    reader = EventConsumer(settings, Prediction, group_id=f"read-{uuid.uuid4().hex[:6]}")

    def take(batch: Any) -> None:
        got.extend(r.event for r in batch if keep(r.event))

    deadline = time.monotonic() + timeout_s
    try:
        while len(got) < want and time.monotonic() < deadline:
            reader.poll_batch(take, timeout_s=1)
        reader.poll_batch(take, timeout_s=1)
    finally:
        reader.close()
    return got


def closed_port() -> int:
    """A loopback port nothing listens on (bound once by us, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Answer:
    """One request: when it was sent and when its answer was read (monotonic seconds)."""

    sent: float
    at: float
    status: int
    version: str | None
    error: str = ""
    request_id: str = ""
    """the answer's request and transaction ids (a 200's), as the prediction log has them"""
    transaction_id: str = ""


class _Senders:
    """Threads running ``_run(worker)`` from ``with`` to its end, and a wait on a count."""

    def __init__(self, threads: int, join_s: float) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._join_s = join_s
        self._threads = [threading.Thread(target=self._run, args=(i,)) for i in range(threads)]

    def _run(self, worker: int) -> None:
        raise NotImplementedError

    def _wait(self, count: Callable[[], int], n: int, timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while count() < n:
            if time.monotonic() > deadline:
                raise AssertionError(f"fewer than {n} {what} in {timeout_s} s")
            time.sleep(0.05)

    def __enter__(self) -> Self:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=self._join_s)


class Load(_Senders):
    """Threads sending /predict continuously until stopped; every answer is recorded. The
    requests carry ``headers``, by default the stack's API key, and the bodies ``body``
    makes of a sender's running number (by default :func:`transaction`'s)."""

    def __init__(
        self,
        url: str,
        headers: Mapping[str, str] | None = None,
        threads: int = 2,
        body: Callable[[int], dict[str, Any]] = transaction,
    ):
        self._url = url
        self._headers = dict(stack_headers() if headers is None else headers)
        self._body = body
        self.answers: list[Answer] = []
        super().__init__(threads, join_s=60)

    def _run(self, worker: int) -> None:
        with httpx.Client(headers=self._headers, timeout=30) as client:
            i = 0
            while not self._stop.is_set():
                i += 1
                body = self._body(worker * 1_000_000 + i)
                sent = time.monotonic()
                try:
                    r = client.post(self._url, json=body)
                    got = r.json() if r.status_code == 200 else {}
                    answer = Answer(
                        sent, time.monotonic(), r.status_code, got.get("model_version"),
                        r.text[:200], got.get("request_id", ""), got.get("transaction_id", ""),
                    )  # fmt: skip
                except Exception as exc:  # a failed call is a result, not a crash
                    answer = Answer(sent, time.monotonic(), 0, None, repr(exc))
                with self._lock:
                    self.answers.append(answer)

    def count(self, version: str) -> int:
        with self._lock:
            return sum(1 for a in self.answers if a.version == version)

    def wait_for(self, version: str, n: int, timeout_s: float = 120) -> None:
        self._wait(lambda: self.count(version), n, timeout_s, f"answers from {version}")


class Relay:
    """A TCP relay from a loopback port to ``target``: Kafka "coming back" on a port where
    nothing listened, without touching the shared broker."""

    def __init__(self, port: int, target: tuple[str, int]) -> None:
        self._target = target
        self._server = socket.create_server(("127.0.0.1", port))
        self._closed = threading.Event()
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self._target)
            self._sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._closed.set()
        self._server.close()
        for s in self._sockets:
            s.close()


class Socks5Proxy:
    """A SOCKS5 proxy (no authentication, CONNECT only) on a loopback port. A Kafka client
    given ``proxy_url`` reaches the bootstrap server *and* the brokers it advertises
    through it, so closing the proxy cuts a connected client off the shared broker
    without touching the broker; a new proxy on the same port brings it back."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"socks5://127.0.0.1:{port}"
        self._server = socket.create_server(("127.0.0.1", port))
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    @staticmethod
    def _read(sock: socket.socket, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("closed during the SOCKS handshake")
            data += chunk
        return data

    def _serve(self, client: socket.socket) -> None:
        try:
            _version, methods = self._read(client, 2)
            self._read(client, methods)
            client.sendall(b"\x05\x00")  # no authentication
            _version, _command, _reserved, kind = self._read(client, 4)
            if kind == 1:
                host = socket.inet_ntop(socket.AF_INET, self._read(client, 4))
            elif kind == 4:
                host = socket.inet_ntop(socket.AF_INET6, self._read(client, 16))
            else:
                host = self._read(client, self._read(client, 1)[0]).decode()
            port = int.from_bytes(self._read(client, 2), "big")
            upstream = socket.create_connection((host, port), timeout=5)
            upstream.settimeout(None)
            client.sendall(b"\x05\x00\x00\x01" + bytes(4) + bytes(2))
        except OSError:
            client.close()
            return
        with self._lock:
            if self._closed.is_set():
                client.close()
                upstream.close()
                return
            self._sockets += [client, upstream]
        for a, b in ((client, upstream), (upstream, client)):
            threading.Thread(target=Relay._pump, args=(a, b), daemon=True).start()

    def close(self) -> None:
        """Refuse new connections and cut every open one."""
        with self._lock:
            self._closed.set()
            self._server.close()
            for s in self._sockets:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()


@dataclass(frozen=True)
class Call:
    """One logical request of :class:`RetryingLoad`: its first attempt and its last."""

    at: float  # when the last attempt was answered (monotonic)
    first_status: int  # 0: no HTTP answer (connection error, timeout)
    status: int
    attempts: int
    seconds: float  # all attempts and backoffs together
    request_id: str | None  # Serve's x-request-id of the last answer
    error: str = ""


class RetryingLoad(_Senders):
    """Threads sending /predict continuously, each call retried on a connection error or a
    5xx with bounded exponential backoff (what a well-behaved client does); every call is
    recorded with its first and final outcome. ``timeout_s`` bounds each attempt; the
    requests carry ``headers``, by default the stack's API key."""

    def __init__(
        self,
        url: str,
        threads: int = 4,
        retries: int = 5,
        backoff_s: float = 0.05,
        timeout_s: float = 10.0,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self._url = url
        self._headers = dict(stack_headers() if headers is None else headers)
        self._retries = retries
        self._backoff_s = backoff_s
        self._timeout_s = timeout_s
        self.calls: list[Call] = []
        super().__init__(threads, join_s=120)

    def _attempt(self, client: httpx.Client, i: int) -> tuple[int, str | None, str]:
        try:
            r = client.post(self._url, json=transaction(i))
        except httpx.HTTPError as exc:
            return 0, None, repr(exc)
        return r.status_code, r.headers.get("x-request-id"), r.text[:200]

    def _run(self, worker: int) -> None:
        with httpx.Client(headers=self._headers, timeout=self._timeout_s) as client:
            i = 0
            while not self._stop.is_set():
                i += 1
                started = time.monotonic()
                status, request_id, error = first = self._attempt(client, worker * 10**7 + i)
                attempts = 1
                while (status == 0 or status >= 500) and attempts <= self._retries:
                    time.sleep(min(self._backoff_s * 2 ** (attempts - 1), 1.0))
                    status, request_id, error = self._attempt(client, worker * 10**7 + i)
                    attempts += 1
                now = time.monotonic()
                call = Call(now, first[0], status, attempts, now - started, request_id, error)
                with self._lock:
                    self.calls.append(call)

    def succeeded(self) -> int:
        with self._lock:
            return sum(1 for c in self.calls if c.status == 200)

    def wait_for(self, n: int, timeout_s: float = 120) -> None:
        """Until ``n`` calls in all have succeeded."""
        self._wait(self.succeeded, n, timeout_s, "successful calls")


@dataclass(frozen=True)
class Shot:
    """One request of an open-loop step: sent at its scheduled time, whatever came before."""

    status: int  # 0: no answer within the deadline, or a connection error
    sent_s: float  # when it was sent, from the step's start
    seconds: float  # until its answer
    body: str


async def open_loop(
    client: httpx.AsyncClient,
    path: str,
    rate: float,
    seconds: float,
    deadline_s: float,
    body: Callable[[int], Any] = transaction,
) -> tuple[list[Shot], float]:
    """Send ``rate`` requests per second to ``path`` for ``seconds`` without waiting for
    answers (an open loop: a slow service does not slow the sender down), each given up
    after ``deadline_s`` in all; the answers and the rate actually sent (the sender may
    fall behind on a busy machine). Request ``i`` carries ``body(i)`` as JSON."""
    import asyncio

    loop = asyncio.get_running_loop()
    start = loop.time()

    async def shot(i: int) -> Shot:
        sent = loop.time()
        try:
            async with asyncio.timeout(deadline_s):
                r = await client.post(path, json=body(i))
        except (httpx.HTTPError, TimeoutError) as exc:
            return Shot(0, sent - start, loop.time() - sent, repr(exc))
        return Shot(r.status_code, sent - start, loop.time() - sent, r.text[:200])

    n = max(1, round(rate * seconds))
    tasks = []
    for i in range(n):
        delay = start + i / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(shot(i)))
    sent_rate = n / (loop.time() - start + 1 / rate)
    return list(await asyncio.gather(*tasks)), sent_rate


async def closed_loop(
    client: httpx.AsyncClient, path: str, concurrency: int, seconds: float, deadline_s: float
) -> tuple[list[Shot], float]:
    """``concurrency`` senders, each sending its next request to ``path`` as soon as the
    last one is answered, for ``seconds``; every request is given up after ``deadline_s``.
    The answers and the rate sent."""
    import asyncio

    loop = asyncio.get_running_loop()
    start = loop.time()
    shots: list[Shot] = []

    async def sender(worker: int) -> None:
        i = 0
        while loop.time() - start < seconds:
            i += 1
            sent = loop.time()
            try:
                async with asyncio.timeout(deadline_s):
                    r = await client.post(path, json=transaction(worker * 10**7 + i))
            except (httpx.HTTPError, TimeoutError) as exc:
                shots.append(Shot(0, sent - start, loop.time() - sent, repr(exc)))
                continue
            shots.append(Shot(r.status_code, sent - start, loop.time() - sent, r.text[:200]))

    await asyncio.gather(*(sender(w) for w in range(concurrency)))
    return shots, len(shots) / (loop.time() - start)


# -- the shipped request limits, replicas, faults and overload ------------------------------

SERVE_YAML = Path(__file__).resolve().parents[2] / "deploy" / "apps" / "fraud" / "serve.yaml"
DEPLOYMENT = "FraudService"


def shipped_request_timeout_s() -> float:
    """serve.yaml's ``http_options.request_timeout_s``: Serve-wide and read when Serve
    starts, so a test sends it per request (Serve's ``x-request-timeout-seconds``)."""
    return float(yaml.safe_load(SERVE_YAML.read_text())["http_options"]["request_timeout_s"])


def shipped_options() -> dict[str, Any]:
    """FraudService's request limits in deploy/apps/fraud/serve.yaml, so that the tests
    load the configuration that ships."""
    document = yaml.safe_load(SERVE_YAML.read_text())
    [app] = [a for a in document["applications"] if a["name"] == "fraud"]
    [deployment] = [d for d in app["deployments"] if d["name"] == DEPLOYMENT]
    keys = ("max_ongoing_requests", "max_queued_requests", "backpressure_config")
    return {k: deployment[k] for k in keys if k in deployment}


def shipped_gate() -> dict[str, Any]:
    """The ServeArgs of serve.yaml's fraud app that bound what a replica takes beyond
    Serve's request limits (``max_batch_payments``), for a test's ``serve_args``."""
    document = yaml.safe_load(SERVE_YAML.read_text())
    [app] = [a for a in document["applications"] if a["name"] == "fraud"]
    return {k: app["args"][k] for k in ("max_batch_payments",) if k in app["args"]}


def replica_actors(app: str) -> dict[str, Any]:
    """The app's live replica actors by replica id."""
    from ray.util.state import list_actors

    actors = list_actors(
        filters=[("class_name", "=", f"ServeReplica:{app}:{DEPLOYMENT}"), ("state", "=", "ALIVE")],
        detail=True,
    )
    return {str(a.name).rsplit("#", 1)[-1]: a for a in actors}


def running_replicas(app: str) -> int:
    from ray import serve
    from ray.serve._private.common import ReplicaState

    status = serve.status().applications.get(app)
    if status is None or DEPLOYMENT not in status.deployments:
        return 0
    return int(status.deployments[DEPLOYMENT].replica_states.get(ReplicaState.RUNNING, 0))


def answered_by(app: str, replica: str, node_id: str, request_ids: set[str]) -> bool:
    """Whether Serve's access log of ``replica`` shows one of ``request_ids`` answered."""
    from ray.util.state import get_log

    filename = f"serve/replica_{app}_{DEPLOYMENT}_{replica}.log"
    try:
        text = "".join(get_log(node_id=node_id, filename=filename, tail=-1, timeout=10))
    except Exception:  # the file appears with the replica's first line
        return False
    return any(f" {rid} -- POST /{app}/predict 200 " in text for rid in request_ids)


def kill_replica_process(actor: Any) -> None:
    """SIGKILL the replica's worker process (after checking that the pid is one)."""
    pid = int(actor.pid)
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    assert b"ServeReplica" in cmdline, (pid, cmdline)
    os.kill(pid, signal.SIGKILL)


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


@dataclass(frozen=True)
class Step:
    """One open-loop step of a ramp: its rate, its answers and the rate actually sent."""

    rate: float
    shots: list[Shot]
    sent: float

    def seconds(self, status: int) -> list[float]:
        return [s.seconds for s in self.shots if s.status == status]

    def throughput(self) -> float:
        """Answers 200 per second, from the step's start to its last answer."""
        ok = [s for s in self.shots if s.status == 200]
        return len(ok) / max((s.sent_s + s.seconds for s in ok), default=1.0)


async def ramp(
    url: str,
    refusal: int,
    rates: tuple[float, ...],
    step_s: float,
    deadline_s: float,
    headers: Mapping[str, str] | None = None,
    path: str = "/predict",
    body: Callable[[int], Any] = transaction,
) -> tuple[list[Step], Step]:
    """Open-loop steps of rising rate up to the first step with refusals (beyond it the
    sender and the proxy, on the same two cores, would measure each other); then a low
    rate again. Each request (``body(i)`` to ``path``) carries serve.yaml's request timeout
    and ``headers`` (by default the stack's API key), and is given up after ``deadline_s``."""
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    steps: list[Step] = []
    sent_headers = {"x-request-timeout-seconds": str(shipped_request_timeout_s()),
                    **(stack_headers() if headers is None else headers)}  # fmt: skip
    async with httpx.AsyncClient(
        base_url=url, headers=sent_headers, timeout=deadline_s, limits=limits
    ) as client:
        for rate in rates:
            if steps and steps[-1].seconds(refusal):
                break
            sent = await open_loop(client, path, rate, step_s, deadline_s, body)
            steps.append(Step(rate, *sent))
        recovery = Step(10, *await open_loop(client, path, 10, 2, deadline_s, body))
    return steps, recovery
