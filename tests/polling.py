"""Waiting for something a real process does in its own time."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(what: str, probe: Callable[[], T | None], timeout: float, every: float = 1.0) -> T:
    """``probe()``'s first truthy answer; an AssertionError naming ``what`` after
    ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f} s")
        time.sleep(every)


def kill_past(
    proc: subprocess.Popen[bytes],
    progress: Callable[[], float],
    past: float,
    every: float = 0.02,
    timeout: float = 120,
) -> float:
    """SIGKILL ``proc`` once ``progress()`` is above ``past`` (or after ``timeout``
    seconds), and return the last progress seen; asserts ``proc`` was still running, so
    the kill fell in the middle of its work."""
    value, deadline = 0.0, time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        value = progress()
        if value > past:
            break
        time.sleep(every)
    alive = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate()
    assert alive, f"the process ended before the kill: {(err or b'').decode()[-3000:]}"
    return value
