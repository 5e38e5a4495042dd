"""The Ray cluster's dashboard REST API, with the cluster's authentication token."""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from driftloop.settings import Settings


class RayApiError(RuntimeError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"Ray dashboard answered {status}: {message}")
        self.status = status


def auth_token(settings: Settings) -> str | None:
    """The cluster token, looked up as Ray does: env, env path, then the token file."""
    if token := os.environ.get("RAY_AUTH_TOKEN"):
        return token.strip()
    path = Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or settings.ray_auth_token_path)
    if path.expanduser().is_file():
        return path.expanduser().read_text().strip() or None
    return None


def dashboard_request(
    settings: Settings,
    method: str,
    path: str,
    body: Any = None,
    *,
    token: str | None = None,
    timeout_s: float = 10,
) -> Any:
    """Call the dashboard (``path`` like ``/api/version``); return the decoded JSON body."""
    url = settings.dashboard_url + path
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"dashboard URL must be http(s): {url}")
    headers = {"Content-Type": "application/json"}
    token = token if token is not None else auth_token(settings)
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310
            raw = response.read()
    except urllib.error.HTTPError as exc:
        raise RayApiError(exc.code, exc.read().decode(errors="replace")[:500]) from exc
    return json.loads(raw) if raw.strip() else None


def dashboard_version(settings: Settings, timeout_s: float = 3) -> dict[str, Any] | None:
    """``/api/version`` if the dashboard answers with our token, else None."""
    try:
        result: dict[str, Any] = dashboard_request(
            settings, "GET", "/api/version", timeout_s=timeout_s
        )
    except (OSError, RayApiError, ValueError):
        return None
    return result


def client_environment(settings: Settings) -> dict[str, str]:
    """Environment for a child process that connects to the cluster as a Ray client."""
    env = {"RAY_AUTH_MODE": "token"}
    if "RAY_AUTH_TOKEN" not in os.environ and "RAY_AUTH_TOKEN_PATH" not in os.environ:
        env["RAY_AUTH_TOKEN_PATH"] = str(settings.ray_auth_token_path)
    return env


def enable_token_auth(settings: Settings) -> None:
    """Make Ray clients of this process (``ray.init``, also inside Feast) present the cluster
    token. Ray's CLI does this when a token exists; a library driver must ask for it, and
    after ``import ray`` the setting must also reach Ray's already-loaded core config."""
    if auth_token(settings) is None:
        raise RuntimeError(
            "no Ray token found (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or "
            f"{settings.ray_auth_token_path}): run `driftloop up` or copy the cluster's token"
        )
    already = os.environ.get("RAY_AUTH_MODE", "").lower() == "token"
    os.environ.update(client_environment(settings))
    if already and "ray" not in sys.modules:
        return
    # Ray reads RAY_AUTH_MODE into its core config at import; refresh it as `ray start` does.
    from ray._raylet import Config  # type: ignore[attr-defined]

    Config.initialize("")


def declared_applications(settings: Settings) -> dict[str, dict[str, Any]]:
    """Serve's applications deployed through the REST API (``PUT
    /api/serve/applications/``), by name, as the dashboard describes them: what a sync owns.
    Those deployed with ``serve.run`` (a trial, a test's own) are left out: an apply never
    touches them."""
    answer = dashboard_request(settings, "GET", "/api/serve/applications/") or {}
    return {
        name: app
        for name, app in (answer.get("applications") or {}).items()
        if app.get("source") != "imperative"
    }
