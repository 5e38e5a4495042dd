"""Who may score: the replica's API key and the guard of the scoring routes.

Secure by default: a replica takes its key from ``ServeArgs.api_key``, else
``DRIFTLOOP_SERVE_API_KEY``, else the file at ``DRIFTLOOP_SERVE_API_KEY_PATH`` (on the
local stack, the one ``driftloop up`` made); with none it refuses to start, unless auth is
switched off (``ServeArgs.auth: off`` or ``DRIFTLOOP_SERVE_AUTH=off``).
"""

# No `from __future__ import annotations`: FastAPI reads the guard's annotation, which
# names an object local to key_guard.

import hmac
from typing import Annotated, Any

from fastapi import HTTPException, Security
from fastapi.security import APIKeyHeader

from driftloop.apikey import API_KEY_HEADER, AUTH_ENV, KEY_ENV, KEY_PATH_ENV, read_key
from driftloop.settings import Settings
from driftloop_serving._config import ServeArgs


class ApiKeyMissing(RuntimeError):
    """Auth is on and no key is configured: the replica does not start."""


def replica_key(args: ServeArgs, settings: Settings) -> str | None:
    """The key the scoring routes require, or None when auth is off.

    ``settings`` are the replica's (``args.settings()``); raises :class:`ApiKeyMissing`,
    naming what to set, when auth is on and no key is found."""
    if args.api_key is not None:
        return args.api_key.get_secret_value()
    if settings.serve_auth == "off":
        return None
    key = read_key(settings)
    if key is None:
        raise ApiKeyMissing(
            f"no API key for the scoring routes: set {KEY_ENV} in the replicas' environment, "
            f"or {KEY_PATH_ENV} to a file that holds one (this replica looked for "
            f"{settings.serve_api_key_path}, which `driftloop up` makes); to serve "
            f"without a key, set {AUTH_ENV}=off or `auth: 'off'` in the application's args"
        )
    return key


def key_guard(key: str | None) -> list[Any]:
    """The dependencies of a scoring route: none when auth is off, else a check of
    ``X-API-Key`` (401 when missing or wrong; compared in constant time). The OpenAPI
    declares the scheme only where the check is."""
    if key is None:
        return []
    expected = key.encode()
    header = APIKeyHeader(name=API_KEY_HEADER, auto_error=False)

    async def require_key(given: Annotated[str | None, Security(header)]) -> None:
        if given is None or not hmac.compare_digest(given.encode(), expected):
            raise HTTPException(401, f"missing or wrong {API_KEY_HEADER}")

    return [Security(require_key)]
