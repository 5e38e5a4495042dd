"""``POST /predict``'s ordinary request answered without FastAPI's request machinery.

One payment's score costs about 0.3 ms; FastAPI's routing, dependency solving (the API
key, the request id header, the body) and response handling cost as much again. Here a
request to ``/predict`` that is what a client normally sends — ``application/json``, the
right API key, a body the route's own type (``RequestTransaction``) validates — is
scored and answered directly, with the very validation, scoring and answer model of the
route. Anything else (another route or method, another media type, no or a wrong key, a
body that is not JSON or not valid, a scoring failure) goes to FastAPI with the body it
sent, unread, and gets FastAPI's answer (415, 401, 400, 422, 503), exactly as without
this path. ``tests/integration/test_serving_contract.py`` compares the answers of both.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter
from pydantic_core import from_json

from driftloop.apikey import API_KEY_HEADER
from driftloop_serving._api import PredictResponse, RequestTransaction
from driftloop_serving._body import JSON, media_type

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from driftloop_serving._service import FraudServiceImpl

PATH = "/predict"
_KEY = API_KEY_HEADER.lower().encode()
_REQUEST: TypeAdapter[Any] = TypeAdapter(RequestTransaction)
_ANSWER: TypeAdapter[PredictResponse] = TypeAdapter(PredictResponse)


class FastPredict:
    """ASGI middleware (inside the metrics middleware): see the module's docstring.
    ``counts`` tells how many requests each way took (``fast``, ``fastapi``)."""

    def __init__(
        self,
        app: ASGIApp,
        service: FraudServiceImpl,
        routes: Sequence[Any],
        counts: dict[str, int],
    ) -> None:
        self.app = app
        self.service = service
        self.routes = routes  # the app's, where the /predict route is
        self._route: Any = None
        self.counts = counts
        self.key = None if service.api_key is None else service.api_key.encode()

    def route(self) -> Any:
        """The ``/predict`` route (the metrics label requests by its path)."""
        if self._route is None:
            self._route = next(r for r in self.routes if getattr(r, "path", None) == PATH)
        return self._route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or _route_path(scope) != PATH:
            await self.app(scope, receive, send)
            return
        headers = _first_headers(scope)
        if (content_type := headers.get(b"content-type")) is None or media_type(
            content_type.decode("latin-1")
        ) != JSON:
            await self._fastapi(scope, receive, send)
            return
        if self.key is not None:
            given = headers.get(_KEY)
            if given is None or not hmac.compare_digest(given, self.key):
                await self._fastapi(scope, receive, send)
                return
        body, last = await _read_body(receive)
        replay = _replay(body, last, receive)
        if last["type"] != "http.request":  # the client went away: FastAPI's concern
            await self._fastapi(scope, replay, send)
            return
        try:
            transaction = _REQUEST.validate_python(from_json(body, allow_inf_nan=False))
        except ValueError:  # not JSON, or not valid: FastAPI's 400 or 422
            await self._fastapi(scope, replay, send)
            return
        started = time.perf_counter()
        request_id = self.service.request_id(_text(headers.get(b"x-request-id")))
        try:
            [outcome] = await self.service.score([transaction], request_id, started)
        except Exception:  # no model, the feature store: FastAPI's route answers (and logs)
            await self._fastapi(scope, replay, send)
            return
        answer = PredictResponse.answer(outcome, transaction.transaction_id, request_id, started)
        content = _ANSWER.dump_json(answer)
        scope["route"] = self.route()
        self.counts["fast"] += 1
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-length", str(len(content)).encode()),
                    (b"content-type", b"application/json"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": content})

    async def _fastapi(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.counts["fastapi"] += 1
        await self.app(scope, receive, send)


def _route_path(scope: Scope) -> str:
    """The path below the application's root path, as Starlette's router matches it."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root) and path[len(root) : len(root) + 1] == "/":
        return path[len(root) :]
    return path


def _first_headers(scope: Scope) -> dict[bytes, bytes]:
    """Each header's first value by its lower-case name (as Starlette's ``headers.get``)."""
    first: dict[bytes, bytes] = {}
    for name, value in scope["headers"]:
        first.setdefault(name.lower(), value)
    return first


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("latin-1")


async def _read_body(receive: Receive) -> tuple[bytes, Message]:
    """The request's body and the last message read (a disconnect, if the client left)."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), message
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks), message


def _replay(body: bytes, last: Message, receive: Receive) -> Receive:
    """A ``receive`` that gives the body read already (or the disconnect), then the
    original's messages."""
    pending: list[Message] = [
        {"type": "http.request", "body": body, "more_body": False}
        if last["type"] == "http.request"
        else last
    ]

    async def replayed() -> Message:
        if pending:
            return pending.pop()
        return await receive()

    return replayed
