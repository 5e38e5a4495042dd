"""Serving Prometheus metrics on the bind host."""

from __future__ import annotations

import errno
import threading
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import REGISTRY, CollectorRegistry, start_http_server

from driftloop.ports import PortInUse
from driftloop.settings import Settings


@dataclass
class MetricsServer:
    host: str
    port: int
    _server: WSGIServer
    _thread: threading.Thread

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"

    def shutdown(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def serve_metrics(
    settings: Settings, port: int, registry: CollectorRegistry = REGISTRY
) -> MetricsServer:
    """Serve ``/metrics`` on ``settings.bind_host:port`` (port 0 picks a free one)."""
    try:
        server, thread = start_http_server(port, addr=settings.bind_host, registry=registry)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise PortInUse(settings.bind_host, port, "metrics") from exc
        raise
    return MetricsServer(settings.bind_host, server.server_port, server, thread)
