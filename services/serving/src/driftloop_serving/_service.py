"""The Ray Serve deployment: one model slot, batched scoring, the prediction log.

Requests for single transactions and for batches all go through one :class:`Batcher`: a
lone request is scored at once; requests that arrive while a batch is scored wait and
are scored together (their online features in one read per view, one XGBoost call), on
one scoring thread so the event loop keeps accepting requests meanwhile. A batch of at
most ``INLINE_ROWS`` payments is scored on the event loop itself when nothing else is
being scored: its score (~0.3 ms) costs less than the two thread hops. What is not the
answer — the prediction log's events and the metrics — is made on a telemetry thread in
rounds, once no request is in flight (``_telemetry``), the metrics tallied and written
once a round (``Tally``).

With a canary declared, the payments of its customers (``in_canary``) are answered by it:
the batch is read once and scored by the serving version, the canary scores the same
rows' features again (``score_beside``) when the batch has any of its customers, and each
payment's answer is the one its customer's side gives. A canary that fails a batch leaves
its customers' answers to the serving version (counted, never a failed request).
"""

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi import FastAPI
from ray import serve
from ray.serve.exceptions import RayServeException

from driftloop.events import Prediction, PredictionRole, Transaction
from driftloop_serving._auth import replica_key
from driftloop_serving._batcher import Batcher
from driftloop_serving._config import ServeArgs, in_canary
from driftloop_serving._http import build_http
from driftloop_serving._log import PredictionLog
from driftloop_serving._metrics import ServingMetrics, Tally
from driftloop_serving._scoring import ActiveModel, ScoredBatch
from driftloop_serving._slot import ModelSlot, NoModel, Refusal
from driftloop_serving._telemetry import Telemetry

log = logging.getLogger(__name__)
T = TypeVar("T")
INLINE_ROWS = 1
"""Batches of up to this many payments are scored on the event loop when it is free."""


@dataclass(frozen=True)
class _Item:
    """One transaction of a request, as it waits for a batch."""

    transaction: Transaction
    request_id: str
    started: float  # perf_counter when the request came in


@dataclass(frozen=True)
class _Part:
    """The rows of a scored batch one version answered (or, a shadow, scored)."""

    active: ActiveModel
    batch: ScoredBatch
    rows: list[int]
    role: PredictionRole


@dataclass(frozen=True)
class Outcome:
    """One transaction's score: row ``index`` of ``batch``, scored by ``active``."""

    active: ActiveModel
    batch: ScoredBatch
    index: int


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
        # First, before any thread starts: with no key (and auth not off), no replica.
        self.api_key: str | None = replica_key(args, self.settings)
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
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="score")
        # Held while a batch or a warm-up is scored: the scoring thread or, for a batch of
        # at most INLINE_ROWS, the event loop itself (they share the feature store's reads)
        self._scoring = threading.Lock()
        # after the answers: the log's events, the metrics (tallied, written a round at once)
        self.tally = Tally(self.metrics)
        self.telemetry = Telemetry(after_round=self.tally.write)
        self._backlog = 0  # predictions handed to the telemetry thread, not yet offered
        self._backlog_lock = threading.Lock()
        self._info_labels: dict[str, str] | None = None  # model_info's current label set
        self.slot = ModelSlot(
            self.settings,
            serial=self._serially,
            on_loaded=self._loaded,
            on_refused=self._refused,
            max_rows=max(args.max_batch_size, args.max_request_items),
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
        self.batcher: Batcher[_Item, Outcome | None] = Batcher(
            self._score_items, args.max_batch_size
        )

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
            self.telemetry.shutdown()

    # --- scoring

    async def score(
        self, transactions: list[Transaction], request_id: str, started: float
    ) -> list[Outcome]:
        """Score ``transactions`` (and log them, off the request's path); :class:`NoModel`
        if there is nothing to score with."""
        items = [_Item(t, request_id, started) for t in transactions]
        outcomes = await self.batcher.submit(items)
        done = [outcome for outcome in outcomes if outcome is not None]
        if len(done) < len(outcomes):
            raise NoModel(self.not_ready_reason())
        return done

    async def _score_items(self, items: list[_Item]) -> list[Outcome | None]:
        active = self.slot.active  # read once: the whole batch uses one model
        if active is None:
            return [None] * len(items)
        shadow, canary = self.slot.shadow, self.slot.canary  # likewise
        txns = [item.transaction for item in items]
        picked: list[int] = []
        if canary is not None:
            picked = [i for i, t in enumerate(txns) if in_canary(t.customer_id, canary.fraction)]
        challenger = canary.active if canary is not None and picked else None
        if len(txns) <= INLINE_ROWS and self._scoring.acquire(blocking=False):
            try:  # a lone payment: two thread hops would cost more than its score
                batch, beside, answered = self._score_all(active, shadow, challenger, txns)
            finally:
                self._scoring.release()
        else:
            loop = asyncio.get_running_loop()
            batch, beside, answered = await loop.run_in_executor(
                self._executor, self._locked, self._score_all, active, shadow, challenger, txns
            )
        outcomes = [Outcome(active, batch, i) for i in range(len(items))]
        serving_rows = list(range(len(items)))
        if answered is not None:
            assert challenger is not None
            for i in picked:
                outcomes[i] = Outcome(challenger, answered, i)
            taken = set(picked)
            serving_rows = [i for i in serving_rows if i not in taken]
        if self.args.telemetry:
            parts = []
            if serving_rows:
                parts.append(_Part(active, batch, serving_rows, "serving"))
            if answered is not None and challenger is not None:
                parts.append(_Part(challenger, answered, picked, "canary"))
            if shadow is not None and beside is not None:
                parts.append(_Part(shadow, beside, list(range(len(items))), "shadow"))
            self._hand_over(items, parts)
        return list(outcomes)

    def _score_all(
        self, active: ActiveModel, shadow: ActiveModel | None, canary: ActiveModel | None,
        txns: list[Transaction],
    ) -> tuple[ScoredBatch, ScoredBatch | None, ScoredBatch | None]:  # fmt: skip
        """The serving version's scores and, on the same rows, the shadow's and the
        canary's (None without one, or when it failed: an answer never fails because of
        a challenger; a failed canary's customers get the serving version's answers)."""
        batch = active.score(txns)
        beside = answered = None
        if shadow is not None:
            try:
                beside = shadow.score_beside(batch, txns)
            except Exception:
                log.exception("the shadow %s failed a batch of %d", shadow.model.version,
                              len(txns))  # fmt: skip
                self.metrics.shadow_scores.inc(len(txns), outcome="failed")
            else:
                self.metrics.shadow_scores.inc(len(txns), outcome="scored")
        if canary is not None:
            try:
                answered = canary.score_beside(batch, txns)
            except Exception:
                log.exception("the canary %s failed a batch of %d", canary.model.version,
                              len(txns))  # fmt: skip
                self.metrics.canary_failures.inc(version=canary.model.version)
        return batch, beside, answered

    def _hand_over(self, items: list[_Item], parts: list[_Part]) -> None:
        """Give a scored batch's parts to the telemetry thread, unless that would put
        more predictions in its backlog than the prediction log may hold
        (``log_queue_size``): then they are dropped and counted (``telemetry_backlog``),
        as a full log queue drops them. Memory stays bounded when telemetry falls behind
        the requests."""
        n = sum(len(part.rows) for part in parts)
        if not n:
            return
        with self._backlog_lock:
            full = self._backlog + n > self.args.log_queue_size
            if not full:
                self._backlog += n
            hurry = self._backlog > self.args.log_queue_size // 2
        if full:
            self.metrics.log_dropped.inc(n, reason="telemetry_backlog")
            return
        self.telemetry.submit(self._record, items, parts, time.perf_counter())
        if hurry:  # a round's wait would fill the backlog: start it
            self.telemetry.hurry()

    def _record(self, items: list[_Item], parts: list[_Part], scored_at: float) -> None:
        """The prediction log's events of a scored batch, every part's in one offer (the
        log writes them as one record per partition), and the score metrics (telemetry
        thread)."""
        try:
            self.log.offer([
                prediction for part in parts
                for prediction in self._predictions(items, part, scored_at)
            ])  # fmt: skip
            for part in parts:
                self._count(part)
        except Exception:  # telemetry must never fail a later batch
            log.exception("logging a scored batch failed")
        finally:
            with self._backlog_lock:
                self._backlog -= sum(len(part.rows) for part in parts)

    @staticmethod
    def _predictions(items: list[_Item], part: _Part, scored_at: float) -> list[Prediction]:
        active, batch, threshold = part.active, part.batch, part.active.threshold
        name, version, role = active.model.name, active.model.version, part.role
        scores = batch.scores[part.rows].tolist()
        features = batch.features_of(part.rows)
        return [
            Prediction.made(  # from the batch's own values: valid by construction
                request_id=item.request_id,
                transaction_id=item.transaction.transaction_id,
                model_name=name,
                model_version=version,
                score=score,
                decision=score >= threshold,
                threshold=threshold,
                features=row_features,
                latency_ms=(scored_at - item.started) * 1000,
                # the prediction is about the payment at its time: windows, label joins
                # and training windows downstream all work in the payment's event time
                event_time=item.transaction.event_time,
                role=role,
            )
            for item, score, row_features in zip(
                (items[i] for i in part.rows), scores, features, strict=True
            )
        ]

    def _count(self, part: _Part) -> None:
        """The score metrics of a part, tallied for the round's end: a shadow's or a
        canary's rows count in no serving metric (a canary's in its own, by version)."""
        active, batch, rows, role = part.active, part.batch, part.rows, part.role
        threshold = active.threshold
        t = self.tally
        if role == "canary":
            positive = int((batch.scores[rows] >= threshold).sum())
            version = active.model.version
            t.inc("canary_answers", positive, version=version, decision="positive")
            t.inc("canary_answers", len(rows) - positive, version=version, decision="negative")
        if role != "serving":
            return
        t.observe("batch_size", len(batch))
        scores = batch.scores[rows]
        positive = int((scores >= threshold).sum())
        t.inc("decisions", positive, decision="positive")
        t.inc("decisions", len(rows) - positive, decision="negative")
        t.scores(scores)
        for view in active.view_keys:
            t.inc("missing_features", batch.missing(view), view=view)

    def _locked(self, fn: Callable[..., T], *args: Any) -> T:
        with self._scoring:
            return fn(*args)

    def _serially(self, fn: Any) -> Any:
        """Run ``fn`` on the scoring thread, never beside a batch, and wait for it (used
        by warm-ups)."""
        return self._executor.submit(self._locked, fn).result()

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
    max_ongoing_requests=32,
    max_queued_requests=32,  # beyond this, Serve answers 503 at once (see serve.yaml)
    ray_actor_options={"num_cpus": 0.5},
)(serve.ingress()(FraudServiceImpl))
"""The ingress deployment; ``serve.yaml``'s ``deployments`` entry overrides its options."""
