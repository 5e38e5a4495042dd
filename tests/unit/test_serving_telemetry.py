"""The telemetry thread's rounds: jobs wait for a round (a period after the first, or a
full round), a round waits for the requests in flight, and ``flush`` runs one now."""

from __future__ import annotations

import concurrent.futures
import threading

import pytest
from driftloop_serving._telemetry import Telemetry

LONG = 60.0  # a wait no test reaches: only the event under test can end it


def test_a_full_round_runs_without_waiting_for_its_period():
    telemetry = Telemetry(period_s=LONG, defer_s=0.0, max_jobs=3)
    try:
        ran: list[tuple[int, str]] = []
        futures = [telemetry.submit(lambda i=i: ran.append((i, threading.current_thread().name)))
                   for i in range(3)]  # fmt: skip
        for future in futures:
            future.result(timeout=10)
        assert ran == [(0, "telemetry"), (1, "telemetry"), (2, "telemetry")]  # in order
    finally:
        telemetry.shutdown(timeout_s=5)


def test_flush_runs_the_waiting_jobs_now_and_waits_for_them():
    telemetry = Telemetry(period_s=LONG, defer_s=LONG)
    try:
        job = telemetry.submit(lambda: 42)
        with pytest.raises(concurrent.futures.TimeoutError):
            job.result(timeout=0.3)  # its round is a minute away
        telemetry.begin()  # a request in flight does not hold a flush up either
        telemetry.flush(timeout_s=10)
        assert job.done() and job.result() == 42
        telemetry.end()
    finally:
        telemetry.shutdown(timeout_s=5)


def test_a_round_waits_while_a_request_is_in_flight():
    telemetry = Telemetry(period_s=0.0, defer_s=LONG)
    try:
        telemetry.begin()
        job = telemetry.submit(lambda: "done")
        with pytest.raises(concurrent.futures.TimeoutError):
            job.result(timeout=0.3)
        telemetry.end()  # the last request answered: the round runs
        assert job.result(timeout=10) == "done"
    finally:
        telemetry.shutdown(timeout_s=5)


def test_a_failing_job_fails_only_its_own_future():
    telemetry = Telemetry(period_s=0.0, defer_s=0.0)
    try:
        bad = telemetry.submit(lambda: 1 / 0)
        good = telemetry.submit(lambda: "fine")
        with pytest.raises(ZeroDivisionError):
            bad.result(timeout=10)
        assert good.result(timeout=10) == "fine"
    finally:
        telemetry.shutdown(timeout_s=5)


def test_shutdown_runs_what_was_submitted_and_refuses_more():
    telemetry = Telemetry(period_s=LONG, defer_s=LONG)
    job = telemetry.submit(lambda: "last")
    telemetry.shutdown(timeout_s=10)
    assert job.result(timeout=1) == "last"
    with pytest.raises(RuntimeError, match="shut down"):
        telemetry.submit(lambda: None)


def test_hurry_starts_a_round_with_the_jobs_waiting():
    telemetry = Telemetry(period_s=LONG, defer_s=0.0)
    try:
        telemetry.hurry()  # nothing waiting: no round, nothing breaks
        job = telemetry.submit(lambda: "now")
        telemetry.hurry()
        assert job.result(timeout=10) == "now"
    finally:
        telemetry.shutdown(timeout_s=5)
