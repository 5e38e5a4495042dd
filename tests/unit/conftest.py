"""The unit tier opens no socket and starts no process: a test that tries fails at once,
naming what it tried. Tests that need either belong to tests/integration."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest


class UnitTierViolation(RuntimeError):
    """A unit test tried to reach the network or start a process."""


def _refuse(what: str) -> Any:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise UnitTierViolation(
            f"unit tests open no socket and start no process ({what}{args[:1]!r}); "
            "move this test to tests/integration"
        )

    return refuse


_socket_init = socket.socket.__init__


def _guarded_socket(self: socket.socket, *args: Any, **kwargs: Any) -> None:
    fileno = kwargs.get("fileno", args[3] if len(args) > 3 else None)
    if fileno is None:  # a new socket; socketpair() wraps descriptors it already has
        _refuse("socket.socket")(*args)
    _socket_init(self, *args, **kwargs)


@pytest.fixture(autouse=True, scope="package")
def _no_sockets_or_processes() -> Iterator[None]:
    """For the whole unit package, module-scoped fixtures included (a package fixture is
    set up before them); undone when the package ends, before any other tier runs."""
    with pytest.MonkeyPatch.context() as patch:
        # socket.socket covers every client and server built on it (http, Kafka);
        # socketpair stays allowed: an asyncio event loop wakes itself through one.
        patch.setattr(socket.socket, "__init__", _guarded_socket)
        patch.setattr(socket, "create_connection", _refuse("socket.create_connection"))
        patch.setattr(subprocess.Popen, "__init__", _refuse("subprocess.Popen"))
        yield
