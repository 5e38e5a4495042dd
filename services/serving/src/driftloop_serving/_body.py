"""How a scoring route reads its body: ``application/json`` only, parsed as RFC 8259 JSON.

FastAPI alone hands a body of another media type (``curl -d`` sends a form) to validation
as bytes, and parses JSON with Python's ``json``, which takes ``NaN``, ``Infinity``, UTF-16
and lone surrogates. Here, before FastAPI reads the body:

* a ``Content-Type`` other than ``application/json`` (parameters aside), or bytes sent
  without one, is a **415**;
* bytes that are not JSON text are a **400** naming what is wrong and where: not UTF-8, a
  syntax error, ``NaN`` or ``Infinity``, more than 200 levels of nesting (pydantic's
  parser stops there), an integer of more than 4300 digits;
* no body at all is left to FastAPI: a 422 whose ``loc`` is ``["body"]``.

``JsonBodyRoute`` wraps FastAPI's route handler (no middleware: nothing is added to the
routes without a body); the parse is pydantic's, in Rust, and happens once per request.
"""

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import HTTPException, Request, Response
from fastapi.routing import APIRoute
from pydantic_core import from_json

JSON = "application/json"


def media_type(content_type: str) -> str:
    """The media type of a ``Content-Type`` value, parameters aside, in lower case."""
    return content_type.partition(";")[0].strip().lower()


class JsonRequest(Request):
    """A request whose ``json()`` is strict RFC 8259 JSON: a 400 otherwise."""

    async def json(self) -> Any:
        raw = await self.body()
        try:
            return from_json(raw, allow_inf_nan=False)
        except ValueError as exc:
            why = _why(raw, exc)
            raise HTTPException(400, f"the body is not JSON (RFC 8259, UTF-8): {why}") from None


def _why(raw: bytes, error: ValueError) -> str:
    """The parser's message, naming NaN and Infinity when they are what it stopped at."""
    try:
        from_json(raw, allow_inf_nan=True)
    except ValueError:
        return str(error)
    return f"NaN and Infinity are not JSON numbers ({error})"


class JsonBodyRoute(APIRoute):
    """A route that refuses a body that is not ``application/json`` (415) before FastAPI
    reads it, and reads the JSON with :class:`JsonRequest` (400)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()
        if self.body_field is None:
            return handle

        async def handle_json(request: Request) -> Response:
            request = JsonRequest(request.scope, request.receive)
            content_type = request.headers.get("content-type")
            if content_type is None:
                if await request.body():
                    raise HTTPException(415, f"Content-Type missing: send the body as {JSON}")
            elif media_type(content_type) != JSON:
                raise HTTPException(415, f"Content-Type {content_type!r} is not {JSON}")
            return await handle(request)

        return handle_json
