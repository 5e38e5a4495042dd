"""The FastAPI app of a replica, built after its constructor (``__serve_build_asgi_app__``)
so routes, limits and the API key come from the deployment's arguments.

Routes (under the application's route prefix, ``/fraud``): ``POST /predict``,
``POST /predict/batch``, ``GET /model`` (these three need ``X-API-Key`` when a key is
configured), and, always open for probes and scrapers, ``GET /healthz``,
``GET /metrics`` (this replica's Prometheus registry), ``/docs`` and ``/openapi.json``.
"""

# No `from __future__ import annotations`: FastAPI reads the endpoints' annotations, some
# of which name objects local to build_http.

import hmac
import logging
import time
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import FastAPI, Header, HTTPException, Response, Security
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from driftloop.events import Transaction
from driftloop_serving._api import (
    DESCRIPTION,
    BatchRequest,
    BatchResponse,
    Health,
    ModelInfo,
    PredictResponse,
    Refused,
    RequestTransaction,
    Score,
)
from driftloop_serving._metrics import ServingMetrics
from driftloop_serving._slot import NoModel

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from driftloop_serving._service import FraudServiceImpl, Outcome

API_KEY_HEADER = "X-API-Key"
log = logging.getLogger(__name__)
_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": f"{API_KEY_HEADER} missing or wrong (when a key is configured)"},
    503: {"description": "no model loaded, or the feature store failed"},
}


class _Count:
    """Counts every HTTP answer by route and status, and its latency (a plain ASGI
    middleware: Starlette's ``BaseHTTPMiddleware`` costs a task and a stream a request)."""

    def __init__(self, app: "ASGIApp", metrics: ServingMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: "Scope", receive: "Receive", send: "Send") -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # unless the app answers: an app that raises is a 500
        body_s = 0.0  # waiting for the request's body (in Serve, a call back to the proxy)

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

        try:
            await self.app(scope, receiving, counted)
        finally:  # re-raised: Starlette answers 500 and the traceback reaches the log
            route = getattr(scope.get("route"), "path", "unmatched")
            m = self.metrics
            m.requests.inc(route=route, status=str(status))
            if status >= 400:
                m.errors.inc(route=route, status=str(status))
            m.latency.observe(time.perf_counter() - started, route=route)


def _timing(app_ms: float, body_ms: float) -> tuple[bytes, bytes]:
    return b"server-timing", f"app;dur={app_ms:.3f}, body;dur={body_ms:.3f}".encode()


def _score(outcome: "Outcome", transaction_id: str) -> Score:
    active = outcome.active
    return Score.of(active, outcome.batch.row(outcome.index, active.threshold), transaction_id)


def build_http(service: "FraudServiceImpl") -> FastAPI:
    app = FastAPI(
        title="driftloop fraud scoring",
        description=DESCRIPTION,
        docs_url="/docs",
        openapi_url="/openapi.json",
        redoc_url=None,
    )
    key_header = APIKeyHeader(name=API_KEY_HEADER, auto_error=False)
    max_items = service.args.max_request_items
    metrics = service.metrics

    async def require_key(key: Annotated[str | None, Security(key_header)]) -> None:
        expected = service.api_key
        if expected is None:
            return
        if key is None or not hmac.compare_digest(key.encode(), expected.encode()):
            raise HTTPException(401, f"missing or wrong {API_KEY_HEADER}")

    app.add_middleware(_Count, metrics=metrics)

    async def scored(
        transactions: list[Transaction], request_id: str, started: float
    ) -> "list[Outcome]":
        try:
            return await service.score(transactions, request_id, started)
        except NoModel as exc:
            raise HTTPException(503, str(exc)) from exc
        except Exception as exc:  # the feature store or the model failed: not the caller
            log.exception("scoring failed")
            raise HTTPException(503, f"scoring failed: {type(exc).__name__}: {exc}") from exc

    @app.post(
        "/predict",
        response_model=PredictResponse,
        responses=_ERRORS,
        dependencies=[Security(require_key)],
    )
    async def predict(
        transaction: RequestTransaction,
        x_request_id: Annotated[str | None, Header()] = None,
    ) -> PredictResponse:
        """Score one transaction."""
        started = time.perf_counter()
        request_id = service.request_id(x_request_id)
        [outcome] = await scored([transaction], request_id, started)
        return PredictResponse(
            **_score(outcome, transaction.transaction_id).model_dump(),
            request_id=request_id,
            latency_ms=(time.perf_counter() - started) * 1000,
        )

    @app.post(
        "/predict/batch",
        response_model=BatchResponse,
        responses=_ERRORS,
        dependencies=[Security(require_key)],
    )
    async def predict_batch(
        body: BatchRequest,
        x_request_id: Annotated[str | None, Header()] = None,
    ) -> BatchResponse:
        """Score up to ``max_request_items`` transactions (distinct transaction ids)."""
        started = time.perf_counter()
        body.check(max_items)
        txns = body.transactions
        request_id = service.request_id(x_request_id)
        results = await scored(txns, request_id, started)
        return BatchResponse(
            request_id=request_id,
            latency_ms=(time.perf_counter() - started) * 1000,
            predictions=[_score(o, t.transaction_id) for t, o in zip(txns, results, strict=True)],
        )

    @app.get(
        "/model", response_model=ModelInfo, responses=_ERRORS, dependencies=[Security(require_key)]
    )
    async def model() -> ModelInfo:
        """The model served: version, digest, threshold and a lineage summary."""
        active = service.slot.active
        if active is None:
            raise HTTPException(503, service.not_ready_reason())
        return ModelInfo.of(active, service.slot.refused)

    @app.get("/healthz", response_model=Health, responses={503: {"model": Health}})
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
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app
