"""The telemetry thread: what is not the answer runs once the answers are out, in rounds.

A scored batch's prediction events and metrics cost about as much CPU as its score. Run at
once on another thread, they competed with the same request's answer for the
interpreter; run after each answer, they competed with the next request (a closed-loop
client sends it within a millisecond), and every request paid for its predecessor's.
Here jobs wait for a round: the thread wakes ``period_s`` after the first job of a round
(or once ``max_jobs`` wait), then waits until no request is in flight (the app's
middleware counts them), or at most ``defer_s``, and runs every job waiting. Its work
then meets few requests: at 200 requests a second, one in fifty rather than every one.
:meth:`hurry` starts a round now (the service does when the predictions waiting pass
half the log's queue), :meth:`flush` too and waits for it (a scrape of the process's
metrics sees every answer before it).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)


class Telemetry:
    def __init__(
        self,
        period_s: float = 0.25,
        defer_s: float = 0.02,
        max_jobs: int = 256,
        after_round: Callable[[], object] | None = None,
    ) -> None:
        """``after_round`` runs on the thread after each round's jobs (its exceptions are
        logged, never raised)."""
        self._after_round = after_round
        self._period_s = period_s
        self._defer_s = defer_s
        self._max_jobs = max_jobs
        self._jobs: deque[tuple[Future[Any], Callable[..., Any], tuple[Any, ...]]] = deque()
        self._cond = threading.Condition()
        self._in_flight = 0
        self._idle_wanted = False  # the thread waits for in_flight to reach 0
        self._now = False  # a flush asked for a round at once
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
            if self._in_flight == 0 and self._idle_wanted:
                self._cond.notify()

    # --- jobs

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        """Run ``fn(*args)`` in the next round; its result or exception on the future."""
        future: Future[T] = Future()
        with self._cond:
            if self._stopped:
                raise RuntimeError("the telemetry thread is shut down")
            self._jobs.append((future, fn, args))
            if len(self._jobs) == 1 or len(self._jobs) >= self._max_jobs:
                self._cond.notify()  # a round begins, or is full
        return future

    def hurry(self) -> None:
        """Start a round now with the jobs waiting (their backlog grows large)."""
        with self._cond:
            if self._jobs:
                self._now = True
                self._cond.notify()

    def flush(self, timeout_s: float | None = None) -> None:
        """Run the jobs waiting now, and wait for them (up to ``timeout_s``)."""
        with self._cond:
            if self._stopped:
                return
            future: Future[None] = Future()
            self._jobs.append((future, lambda: None, ()))
            self._now = True
            self._cond.notify()
        future.result(timeout=timeout_s)

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
                self._cond.wait_for(
                    lambda: self._stopped or self._now or len(self._jobs) >= self._max_jobs,
                    timeout=self._period_s,
                )
                self._idle_wanted = True
                self._cond.wait_for(
                    lambda: self._in_flight == 0 or self._stopped or self._now,
                    timeout=self._defer_s,
                )
                self._idle_wanted = self._now = False
                jobs = list(self._jobs)
                self._jobs.clear()
            for future, fn, args in jobs:
                if not future.set_running_or_notify_cancel():
                    continue
                try:
                    future.set_result(fn(*args))
                except BaseException as exc:  # the job's caller sees it on the future
                    future.set_exception(exc)
            del jobs  # a round's arguments (scored batches) are not kept until the next
            if self._after_round is not None:
                try:
                    self._after_round()
                except Exception:  # a metrics hiccup must not end the thread
                    log.exception("the telemetry round's last step failed")
