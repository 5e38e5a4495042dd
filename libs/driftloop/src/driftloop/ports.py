"""Which process holds a TCP port, for error messages that name it."""

from __future__ import annotations

import errno
import socket

import psutil


class PortInUse(RuntimeError):
    def __init__(self, host: str, port: int, purpose: str) -> None:
        owner = port_owner(port)
        who = f" by {owner}" if owner else " by another process"
        super().__init__(
            f"port {port} on {host} (needed for {purpose}) is already taken{who}; "
            f"stop that process or choose another port"
        )
        self.port = port


def port_owner(port: int) -> str | None:
    """``"name (pid N)"`` of the process listening on ``port``, when the system tells."""
    try:
        connections = psutil.net_connections(kind="tcp")
    except (psutil.AccessDenied, PermissionError):
        return None
    for conn in connections:
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
            if conn.pid is None:
                return None
            try:
                return f"{psutil.Process(conn.pid).name()} (pid {conn.pid})"
            except psutil.Error:
                return f"pid {conn.pid}"
    return None


def port_free(host: str, port: int) -> bool:
    """True if ``host:port`` can be bound right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def require_free(host: str, port: int, purpose: str) -> None:
    if not port_free(host, port):
        raise PortInUse(host, port, purpose)


def accepting(host: str, port: int, timeout_s: float = 0.5) -> bool:
    """True if something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False
