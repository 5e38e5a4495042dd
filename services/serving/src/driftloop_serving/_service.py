"""The Ray Serve deployment: one model slot, batched scoring, the prediction log.

Requests for single transactions and for batches all go through ``_score_many``, a
``@serve.batch`` method: the transactions waiting together are read from the online
store in one call and scored in one XGBoost call, on one scoring thread (so the event
loop keeps accepting requests meanwhile).
"""

import asyncio
import logging
import os
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, cast

from fastapi import FastAPI
from ray import serve
from ray.serve.exceptions import RayServeException

from driftloop.events import Prediction, Transaction
from driftloop_serving._config import ServeArgs
from driftloop_serving._http import build_http
from driftloop_serving._log import PredictionLog
from driftloop_serving._metrics import ServingMetrics
from driftloop_serving._scoring import ActiveModel, Scored, score_batch
from driftloop_serving._slot import ModelSlot, NoModel, Refusal

API_KEY_ENV = "DRIFTLOOP_SERVE_API_KEY"
Outcome = tuple[ActiveModel, Scored] | None
log = logging.getLogger(__name__)


class _BatchSettings(Protocol):
    """What ``@serve.batch`` adds to the method it wraps (its typing does not say)."""

    def set_max_batch_size(self, size: int) -> None: ...

    def set_batch_wait_timeout_s(self, timeout_s: float) -> None: ...


def _refresh_gauges(metrics: ServingMetrics, every_s: float, stop: threading.Event) -> None:
    """Report the gauges to Ray again every ``every_s`` until ``stop`` (not a method: the
    thread holds no reference to the service, which can then be collected)."""
    while not stop.wait(every_s):
        try:
            metrics.refresh()
        except Exception:  # a metrics hiccup must not end the refreshes
            log.exception("reporting the gauges to Ray again failed")


def _in_replica() -> bool:
    try:
        serve.get_replica_context()
    except RayServeException:
        return False
    return True


class FraudServiceImpl:
    """The deployment's behaviour. ``FraudService`` is this class as a Serve ingress."""

    def __init__(self, args: ServeArgs) -> None:
        self.args = args
        self.settings = args.settings()
        in_replica = _in_replica()
        self.metrics = ServingMetrics.create(ray=in_replica)
        self._stop_refresh = threading.Event()
        if in_replica:  # Ray's exporter forgets a gauge that is not reported again
            threading.Thread(
                target=_refresh_gauges,
                args=(self.metrics, args.gauge_refresh_s, self._stop_refresh),
                name="gauge-refresh",
                daemon=True,
            ).start()
        secret = args.api_key.get_secret_value() if args.api_key else None
        self.api_key: str | None = secret or os.environ.get(API_KEY_ENV) or None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="score")
        self._info_labels: dict[str, str] | None = None  # model_info's current label set
        self.slot = ModelSlot(
            self.settings, serial=self._serially, on_loaded=self._loaded, on_refused=self._refused
        )
        self.log = PredictionLog(
            self.settings,
            capacity=args.log_queue_size,
            linger_ms=args.log_linger_ms,
            delivery_timeout_ms=args.log_delivery_timeout_ms,
            proxy_url=args.log_proxy_url,
            on_drop=lambda reason, n: self.metrics.log_dropped.inc(n, reason=reason),
            on_sent=lambda n: self.metrics.log_sent.inc(n),
        )
        self.log.start()
        batching = cast(_BatchSettings, self._score_many)
        batching.set_max_batch_size(args.max_batch_size)
        batching.set_batch_wait_timeout_s(args.batch_wait_timeout_s)

    # --- Ray Serve hooks

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        """Apply a ``ModelConfig``; refusals keep the loaded model (see ``ModelSlot``)."""
        self.slot.apply(user_config)

    def __serve_build_asgi_app__(self) -> FastAPI:
        return build_http(self)

    def __del__(self) -> None:
        if hasattr(self, "_stop_refresh"):
            self._stop_refresh.set()
        if hasattr(self, "log"):  # absent when the constructor failed early
            self.log.close(timeout_s=2)
            self._executor.shutdown(wait=False)

    # --- scoring

    async def score(
        self, transactions: list[Transaction], request_id: str, started: float
    ) -> list[tuple[ActiveModel, Scored]]:
        """Score and log ``transactions``; :class:`NoModel` if there is nothing to score with."""
        outcomes = await asyncio.gather(*(self._score_many(t) for t in transactions))
        done: list[tuple[ActiveModel, Scored]] = []
        for outcome in outcomes:
            if outcome is None:
                raise NoModel(self.not_ready_reason())
            done.append(outcome)
        latency_ms = (time.perf_counter() - started) * 1000
        self.log.offer(
            Prediction(
                request_id=request_id,
                transaction_id=txn.transaction_id,
                model_name=active.model.name,
                model_version=active.model.version,
                score=scored.score,
                decision=scored.decision,
                threshold=active.threshold,
                features=scored.features,
                latency_ms=latency_ms,
                # the prediction is about the payment at its time: windows, label joins
                # and training windows downstream all work in the payment's event time
                event_time=txn.event_time,
            )
            for txn, (active, scored) in zip(transactions, done, strict=True)
        )
        return done

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.005)
    async def _score_many(self, transactions: list[Transaction]) -> list[Outcome]:
        active = self.slot.active  # read once: the whole batch uses one model
        if active is None:
            return [None] * len(transactions)
        loop = asyncio.get_running_loop()
        scored = await loop.run_in_executor(self._executor, score_batch, active, transactions)
        self._record(active, scored)
        return [(active, s) for s in scored]

    def _record(self, active: ActiveModel, scored: list[Scored]) -> None:
        m = self.metrics
        m.batch_size.observe(len(scored))
        for s in scored:
            m.scores.observe(s.score)
            m.decisions.inc(decision="positive" if s.decision else "negative")
        for view in active.view_keys:
            missing = sum(1 for s in scored if s.feature_ages_s[view] is None)
            if missing:
                m.missing_features.inc(missing, view=view)

    def _serially(self, fn: Any) -> Any:
        """Run ``fn`` on the scoring thread and wait for it (used by warm-ups)."""
        return self._executor.submit(fn).result()

    # --- state for the routes

    def not_ready_reason(self) -> str:
        refused = self.slot.refused
        if refused is not None:
            return f"no model loaded: the configured model was refused: {refused.reason}"
        return "no model loaded: the deployment's user_config names no model yet"

    @staticmethod
    def request_id(header: str | None) -> str:
        # ASCII only: str.isalnum() is true of "é" too, which the Prediction's Id refuses
        if (
            header
            and len(header) <= 128
            and header.isascii()
            and all(c.isalnum() or c in "._:-" for c in header)
        ):
            return header
        return uuid.uuid4().hex

    def _loaded(self, active: ActiveModel, seconds: float) -> None:
        if self._info_labels is not None:
            self.metrics.model_info.set(0, **self._info_labels)
        labels = {"model": active.model.name, "version": active.model.version}
        self.metrics.model_info.set(1, **labels)
        self._info_labels = labels
        self.metrics.model_loads.inc(outcome="loaded")
        log.info("model %s loaded in %.3f s", active.model.version, seconds)

    def _refused(self, refusal: Refusal) -> None:
        self.metrics.model_loads.inc(outcome="refused")


FraudService = serve.deployment(
    name="FraudService",
    max_ongoing_requests=16,
    max_queued_requests=16,  # beyond this, Serve answers 503 at once (see serve.yaml)
    ray_actor_options={"num_cpus": 0.5},
)(serve.ingress()(FraudServiceImpl))
"""The ingress deployment; ``serve.yaml``'s ``deployments`` entry overrides its options."""
