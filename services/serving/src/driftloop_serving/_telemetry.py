"""The telemetry thread: what is not the answer runs once the answers are out.

A scored batch's prediction events and per-score metrics cost about as much CPU as its
score. Run at once on another thread, they competed with the same request's answer for
the interpreter (its serialization and send): at one client, ``/predict``'s p50 was 1.32x
that of the same replica with telemetry off (bench/serving.py). Here the thread waits,
before each round, until no request is in flight (the app's middleware counts them), or
at most ``defer_s``, and then runs every job waiting: under load nothing waits longer
than that, and jobs are not throttled to one per wait.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")


class Telemetry:
    def __init__(self, defer_s: float = 0.02) -> None:
        self._defer_s = defer_s
        self._jobs: deque[tuple[Future[Any], Callable[..., Any], tuple[Any, ...]]] = deque()
        self._cond = threading.Condition()
        self._in_flight = 0
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="telemetry", daemon=True)
        self._thread.start()

    # --- the requests (event loop)

    def begin(self) -> None:
        with self._cond:
            self._in_flight += 1

    def end(self) -> None:
        with self._cond:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._cond.notify()

    # --- jobs

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        future: Future[T] = Future()
        with self._cond:
            if self._stopped:
                raise RuntimeError("the telemetry thread is shut down")
            self._jobs.append((future, fn, args))
            self._cond.notify()
        return future

    def shutdown(self, timeout_s: float | None = None) -> None:
        """Stop after the jobs already submitted (waits up to ``timeout_s``; None: not)."""
        with self._cond:
            self._stopped = True
            self._cond.notify()
        if timeout_s is not None:
            self._thread.join(timeout_s)

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: bool(self._jobs) or self._stopped)
                if not self._jobs:
                    return  # stopped, nothing left
                deadline = time.monotonic() + self._defer_s
                self._cond.wait_for(
                    lambda: self._in_flight == 0 or self._stopped,
                    timeout=max(0.0, deadline - time.monotonic()),
                )
                jobs = list(self._jobs)
                self._jobs.clear()
            for future, fn, args in jobs:
                if not future.set_running_or_notify_cancel():
                    continue
                try:
                    future.set_result(fn(*args))
                except BaseException as exc:  # the job's caller sees it on the future
                    future.set_exception(exc)
