"""The Serve endpoint's API key: made once by ``driftloop up``, sent by every client.

The scoring routes need ``X-API-Key`` unless auth is switched off
(``DRIFTLOOP_SERVE_AUTH=off``). A replica and a client find the key the same way:
``DRIFTLOOP_SERVE_API_KEY`` if set (on Kubernetes, from a Secret), else the content of the
file at ``Settings.serve_api_key_path`` (``<state_dir>/serve-api-key``), which ``driftloop
up`` generates as it generates Ray's token. A Serve config is readable through Ray's
dashboard, so the key never goes into one: replicas get the file's path, not its content.
Where the key is shown, it is by :func:`fingerprint` only.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from typing import Any

from driftloop.settings import Settings

API_KEY_HEADER = "X-API-Key"
KEY_ENV = "DRIFTLOOP_SERVE_API_KEY"
KEY_PATH_ENV = "DRIFTLOOP_SERVE_API_KEY_PATH"
AUTH_ENV = "DRIFTLOOP_SERVE_AUTH"


def read_key(settings: Settings) -> str | None:
    """The key: ``DRIFTLOOP_SERVE_API_KEY``, else the key file's content, else None (no
    file, or an empty one). A file that exists but cannot be read is an error."""
    if settings.serve_api_key is not None:
        return settings.serve_api_key.get_secret_value().strip() or None
    try:
        return settings.serve_api_key_path.read_text().strip() or None
    except FileNotFoundError:
        return None


def key_source(settings: Settings) -> str:
    """Where a client's key comes from, for messages (never the key itself)."""
    if settings.serve_api_key is not None:
        return f"${KEY_ENV}"
    return str(settings.serve_api_key_path)


def client_headers(settings: Settings) -> dict[str, str]:
    """Headers that authenticate a request to the scoring routes (none if no key is found:
    the endpoint then answers 401, unless its auth is off)."""
    key = read_key(settings)
    return {API_KEY_HEADER: key} if key else {}


def ensure_key(settings: Settings) -> bool:
    """Make the key file (mode 0600) unless it exists; True if this call made it.

    The file appears whole or not at all (written beside it, then linked into place), and
    an existing one is never replaced, also when two calls race."""
    path = settings.serve_api_key_path
    if path.exists():
        if path.stat().st_size == 0:
            raise RuntimeError(f"the API key file {path} is empty: remove it to get a new key")
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(32) + "\n")
        try:
            os.link(partial, path)
        except FileExistsError:
            return False
    finally:
        partial.unlink()
    return True


def fingerprint(key: str) -> str:
    """What may be shown of a key: the first 8 hex of its sha256 (enough to tell two keys
    apart, nothing to authenticate with)."""
    return hashlib.sha256(key.encode()).hexdigest()[:8]


def describe(settings: Settings) -> dict[str, Any]:
    """What ``driftloop status`` says of the key: whether one is required, where it is and
    its fingerprint; never the key."""
    if settings.serve_auth == "off":
        return {"auth": f"off ({AUTH_ENV}=off): the scoring routes are open"}
    detail: dict[str, Any] = {"auth": f"{API_KEY_HEADER} required on the scoring routes"}
    if settings.serve_api_key is not None:
        detail["api_key"] = f"from {KEY_ENV}"
    else:
        detail["api_key_file"] = str(settings.serve_api_key_path)
    try:
        key = read_key(settings)
    except OSError as exc:
        detail["api_key"] = f"unreadable: {exc.strerror}"
        return detail
    if key:
        detail["api_key_sha256"] = fingerprint(key)
    elif settings.serve_api_key_path.is_file():
        detail["api_key"] = "the file is empty: remove it, `driftloop up` makes a new key"
    else:
        detail["api_key"] = "missing: `driftloop up` makes it"
    return detail
