"""Error answers: one shape (FastAPI's ``{"detail": ...}``), described in the OpenAPI, and
never a path of the server's file system.

``detail`` is a sentence (``Error``), or for a 422 one entry per invalid part of the
request (``Invalid``). Text that comes from the server's state (a refused model's reason, a
scoring failure) goes through :func:`public` first; the log keeps the full text.
"""

import re
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import to_json
from starlette.exceptions import HTTPException

from driftloop_serving._config import STORE_SCHEME

# A path or URI: starts a word with "/" or "scheme://" and runs to a space, a quote or a
# bracket. "models:/<name>/<version>" is not one (its "/" follows a colon).
_PATH = re.compile(r"(?<![^\s'\"(\[=,])(?:[A-Za-z][A-Za-z0-9+.-]*://|/)[^\s'\"()\[\],]*")
# Inside a model store: <store root>/<name>/<version>[/<file>].
_IN_STORE = re.compile(r"/([^/]+/sha256-[0-9a-f]{16}(?:/.*)?)$")


def public(text: str) -> str:
    """``text`` fit for a client: a path into a model store becomes its store-relative
    ``models:/<name>/<version>/…`` form, any other path or URI ``<path>``."""

    def replace(found: re.Match[str]) -> str:
        stored = _IN_STORE.search(found[0])
        return f"{STORE_SCHEME}{stored[1]}" if stored else "<path>"

    return _PATH.sub(replace, text)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Error(_Body):
    """What was wrong, in a sentence."""

    detail: str


class FieldError(_Body):
    """One invalid part of a request, as FastAPI and pydantic name it."""

    type: str = Field(description="pydantic's error type, e.g. missing, float_type, too_long")
    loc: list[str | int] = Field(description='where: ["body", "transactions", 2, "amount"]')
    msg: str
    input: Any = Field(
        None, description="the value found there (a number beyond a double: its JSON string)"
    )
    ctx: dict[str, Any] | None = Field(None, description="the limit that was not met")


class Invalid(_Body):
    """Every invalid part of the request that was found."""

    detail: list[FieldError]


async def http_error(request: Request, exc: HTTPException) -> Response:
    """FastAPI's answer to an ``HTTPException``, its detail made :func:`public`."""
    detail = public(exc.detail) if isinstance(exc.detail, str) else exc.detail
    return JSONResponse({"detail": detail}, exc.status_code, headers=exc.headers)


async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
    """FastAPI's 422, rendered so that any input it echoes is JSON: a number beyond a
    double (``1e400`` parses as infinity) is written as a string."""
    body = to_json({"detail": exc.errors()}, inf_nan_mode="strings", fallback=str)
    return Response(body, 422, media_type="application/json")
