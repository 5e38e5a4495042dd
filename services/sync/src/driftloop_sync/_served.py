"""Evidence that the applied models answer, not only that Serve says RUNNING.

A replica's ``reconfigure`` that refuses a model (a digest mismatch, an unreadable or
unwarmable file) keeps the model it had and returns normally, so Serve reports the
application RUNNING either way. What tells the two apart is the application itself:
``GET <route>/healthz`` (open without an API key, for probes) names the version it serves
and the last version it refused.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

from driftloop_sync._compose import Declared


class NotServed(RuntimeError):
    """An applied model that its application does not serve; the message says why."""


def _health(url: str) -> dict[str, Any] | None:
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"serve URL must be http(s): {url}")
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310
            answer = json.loads(response.read())
    except urllib.error.HTTPError as exc:  # 503 while no model is loaded still has a body
        try:
            answer = json.loads(exc.read())
        except ValueError:
            return None
    except (OSError, ValueError):
        return None
    return answer if isinstance(answer, dict) else None


def _hex(digest: object) -> str:
    return str(digest).removeprefix("sha256:")


def wait_served(
    serve_url: str, models: list[Declared], timeout_s: float, poll_s: float = 0.5
) -> None:
    """Return once every application answers with its declared version; raise
    :class:`NotServed` as soon as one reports refusing it, or at ``timeout_s``; asks every
    ``poll_s``."""
    deadline = time.monotonic() + timeout_s
    pending = list(models)
    last: dict[str, Any] | None = None
    while pending:
        model = pending[0]
        _, version = model.name_version
        last = _health(f"{serve_url.rstrip('/')}{model.route_prefix.rstrip('/')}/healthz")
        if last is not None and last.get("model_version") == version:
            pending.pop(0)
            continue
        refused = (last or {}).get("refused") or {}
        if refused.get("model_uri") == model.uri and _hex(refused.get("model_digest")) == _hex(
            model.digest
        ):
            raise NotServed(
                f"{model.application} refused {model.uri}: {refused.get('reason')}; "
                f"it serves {last and last.get('model_version')}"
            )
        if time.monotonic() > deadline:
            raise NotServed(
                f"{model.application} does not serve {model.uri} after {timeout_s:g} s "
                f"(healthz: {last})"
            )
        time.sleep(poll_s)
