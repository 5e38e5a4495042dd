"""The FastAPI app of a replica, built after its constructor (``__serve_build_asgi_app__``)
so routes, limits and the API key come from the deployment's arguments.

Routes (under the application's route prefix, ``/fraud``): ``POST /predict``,
``POST /predict/batch``, ``GET /model`` (these three need ``X-API-Key`` unless the
deployment's auth is off: ``_auth``), and, always open for probes and scrapers, ``GET /healthz``,
``GET /metrics`` (outside a replica the process's Prometheus registry; in a replica a 404
pointing at Ray's exporter, its one sink), ``/docs`` and ``/openapi.json``. Every answer
carries ``Server-Timing``: the time in this app, and of it the wait for the body.

A bad request is a 4xx, never a 5xx: bodies are read by ``_body.JsonBodyRoute`` (415,
400), validated by the models of ``_api`` (422), and every error answer is rendered by the
handlers of ``_errors``. Each route's ``responses`` lists every status it can answer, and
the API-key scheme and 401 appear unless the deployment's auth is off.
"""

# No `from __future__ import annotations`: FastAPI reads the endpoints' annotations, some
# of which name objects local to build_http.

import logging
import time
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import FastAPI, Header, HTTPException, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from driftloop.apikey import API_KEY_HEADER
from driftloop.events import Transaction
from driftloop_serving._api import (
    DESCRIPTION,
    DISTINCT_IDS,
    BatchBody,
    BatchResponse,
    Health,
    ModelInfo,
    PredictResponse,
    Refused,
    RequestTransaction,
    score_of,
)
from driftloop_serving._auth import key_guard
from driftloop_serving._body import JsonBodyRoute
from driftloop_serving._errors import Error, Invalid, http_error, invalid_request
from driftloop_serving._fast import FastPredict
from driftloop_serving._gate import BatchGate
from driftloop_serving._metrics import Tally
from driftloop_serving._slot import NoModel
from driftloop_serving._telemetry import Telemetry

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from driftloop_serving._service import FraudServiceImpl, Outcome

REQUEST_ID = (
    "kept as the answer's request_id if 1-128 of A-Z a-z 0-9 . _ : - (not an error otherwise: "
    "the replica makes an id)"
)
log = logging.getLogger(__name__)
_ANSWERS: dict[int, dict[str, Any]] = {
    400: {
        "model": Error,
        "description": "the body is not JSON text (RFC 8259): not UTF-8, a syntax error, NaN or "
        "Infinity, more than 200 levels of nesting, an integer of more than 4300 digits",
    },
    401: {"model": Error, "description": f"{API_KEY_HEADER} missing or wrong"},
    415: {
        "model": Error,
        "description": "Content-Type is not application/json, or bytes came without one",
    },
    422: {
        "model": Invalid,
        "description": "no body, or a part of it breaks a rule of the schema (strict JSON types, "
        "patterns, bounds, event_time, event_id, maxItems) or repeats a transaction id in a "
        "batch; each entry names where (loc) and why (type, msg)",
    },
    503: {"model": Error, "description": "no model loaded, or the feature store failed"},
}


class _Count:
    """Counts every HTTP answer by route and status, and its latency, on the telemetry
    thread (a plain ASGI middleware: Starlette's ``BaseHTTPMiddleware`` costs a task and a
    stream a request), and tells that thread which requests are in flight (its rounds
    wait for none)."""

    def __init__(self, app: "ASGIApp", tally: Tally, telemetry: Telemetry) -> None:
        self.app = app
        self.tally = tally
        self.telemetry = telemetry

    async def __call__(self, scope: "Scope", receive: "Receive", send: "Send") -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # unless the app answers: an app that raises is a 500
        body_s = 0.0  # waiting for the request's body (through Serve's Python proxy, a call)

        async def receiving() -> "Message":
            nonlocal body_s
            began = time.perf_counter()
            message = await receive()
            body_s += time.perf_counter() - began
            return message

        async def counted(message: "Message") -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                # The time this replica took, for clients to tell it from the network's
                # and the proxy's (https://www.w3.org/TR/server-timing/).
                spent_ms = (time.perf_counter() - started) * 1000
                headers = [*message.get("headers", ()), _timing(spent_ms, body_s * 1000)]
                message = {**message, "headers": headers}
            await send(message)

        self.telemetry.begin()
        try:
            await self.app(scope, receiving, counted)
        finally:  # re-raised: Starlette answers 500 and the traceback reaches the log
            self.telemetry.end()
            route = getattr(scope.get("route"), "path", "unmatched")
            seconds = time.perf_counter() - started
            self.telemetry.submit(_count_request, self.tally, route, status, seconds)


def _count_request(tally: Tally, route: str, status: int, seconds: float) -> None:
    """A request's metrics, tallied on the telemetry thread (written a round at once)."""
    tally.inc("requests", route=route, status=str(status))
    if status >= 400:
        tally.inc("errors", route=route, status=str(status))
    tally.observe("latency", seconds, route=route)


def _timing(app_ms: float, body_ms: float) -> tuple[bytes, bytes]:
    return b"server-timing", f"app;dur={app_ms:.3f}, body;dur={body_ms:.3f}".encode()


def build_http(service: "FraudServiceImpl", fast_predict: bool = True) -> FastAPI:
    """The replica's app; ``fast_predict=False`` leaves ``/predict`` wholly to FastAPI
    (``_fast``; the tests compare both)."""
    app = FastAPI(
        title="driftloop fraud scoring",
        description=DESCRIPTION,
        docs_url="/docs",
        openapi_url="/openapi.json",
        redoc_url=None,
        exception_handlers={
            StarletteHTTPException: http_error,
            RequestValidationError: invalid_request,
        },
    )
    app.router.route_class = JsonBodyRoute
    metrics = service.metrics

    class BatchRequest(BatchBody):
        """Transactions to score in one request."""

        transactions: list[RequestTransaction] = Field(
            min_length=1, max_length=service.args.max_request_items, description=DISTINCT_IDS
        )

    # Unless auth is off, the scoring routes declare the key's scheme (and the 401).
    guard = key_guard(service.api_key)

    def answers(*statuses: int) -> dict[int | str, dict[str, Any]]:
        keyed = (401,) if guard else ()
        return {status: _ANSWERS[status] for status in sorted((*statuses, *keyed))}

    # The last added is the outermost: both inside the count, so the fast path's answers
    # and the gate's refusals are counted like any answer.
    app.state.fast_predict = counts = {"fast": 0, "fastapi": 0}
    if fast_predict:
        app.add_middleware(FastPredict, service=service, routes=app.router.routes, counts=counts)
    app.add_middleware(
        BatchGate, budget=service.args.max_batch_payments, most=service.args.max_request_items
    )
    app.add_middleware(_Count, tally=service.tally, telemetry=service.telemetry)

    async def scored(
        transactions: list[Transaction], request_id: str, started: float
    ) -> "list[Outcome]":
        try:
            return await service.score(transactions, request_id, started)
        except NoModel as exc:
            raise HTTPException(503, str(exc)) from exc
        except Exception as exc:  # the feature store or the model failed: not the caller
            log.exception("scoring request %s failed", request_id)  # the detail stays here
            detail = f"scoring failed ({type(exc).__name__}), request {request_id}: see the log"
            raise HTTPException(503, detail) from exc

    @app.post(
        "/predict",
        response_model=PredictResponse,
        responses=answers(400, 415, 422, 503),
        dependencies=guard,
    )
    async def predict(
        transaction: RequestTransaction,
        x_request_id: Annotated[str | None, Header(description=REQUEST_ID)] = None,
    ) -> PredictResponse:
        """Score one transaction."""
        started = time.perf_counter()
        request_id = service.request_id(x_request_id)
        [outcome] = await scored([transaction], request_id, started)
        return PredictResponse.answer(outcome, transaction.transaction_id, request_id, started)

    batch_answers = answers(400, 415, 422, 503)
    batch_answers[503] = {
        "model": Error,
        "description": f"{_ANSWERS[503]['description']}; or the batches being scored hold "
        f"max_batch_payments ({service.args.max_batch_payments}) payments: retry after "
        "Retry-After seconds",
    }

    @app.post(
        "/predict/batch",
        response_model=BatchResponse,
        responses=batch_answers,
        dependencies=guard,
    )
    async def predict_batch(
        body: BatchRequest,
        x_request_id: Annotated[str | None, Header(description=REQUEST_ID)] = None,
    ) -> BatchResponse:
        """Score up to ``max_request_items`` transactions (distinct transaction ids)."""
        started = time.perf_counter()
        body.check()
        txns = body.transactions
        request_id = service.request_id(x_request_id)
        results = await scored(txns, request_id, started)
        return BatchResponse.model_construct(
            request_id=request_id,
            latency_ms=(time.perf_counter() - started) * 1000,
            predictions=[score_of(o, t.transaction_id) for t, o in zip(txns, results, strict=True)],
        )

    @app.get("/model", response_model=ModelInfo, responses=answers(503), dependencies=guard)
    async def model() -> ModelInfo:
        """The model served: version, digest, threshold and a lineage summary; the shadow
        scored beside it and the canary answering a fraction of customers, if any."""
        active = service.slot.active
        if active is None:
            raise HTTPException(503, service.not_ready_reason())
        slot = service.slot
        return ModelInfo.of(active, slot.refused, slot.shadow, slot.shadow_refused,
                            slot.canary, slot.canary_refused)  # fmt: skip

    @app.get(
        "/healthz",
        response_model=Health,
        responses={503: {"model": Health, "description": "not ready: no model (reason says why)"}},
    )
    async def healthz() -> JSONResponse:
        """Ready when a model is loaded. Open without an API key (for probes)."""
        active = service.slot.active
        health = Health(
            ready=active is not None,
            model_version=active.model.version if active else None,
            reason=None if active else service.not_ready_reason(),
            refused=Refused.of(service.slot.refused),
            prediction_log_connected=service.log.connected,
            prediction_log_queued=service.log.queued,
        )
        return JSONResponse(health.model_dump(mode="json"), status_code=200 if active else 503)

    @app.get("/metrics", include_in_schema=False)
    async def prometheus() -> Response:
        if metrics.ray:  # one sink: Ray's exporter has every replica's figures
            return JSONResponse(
                {"detail": "a replica's metrics go to Ray's metrics exporter (each node's "
                 "metrics export port, names prefixed ray_); scrape that"},
                status_code=404,
            )  # fmt: skip
        # every answer before this one counted (the telemetry thread counts in rounds)
        await run_in_threadpool(service.telemetry.flush, 10)
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app
