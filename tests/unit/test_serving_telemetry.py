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


def test_after_round_runs_after_each_rounds_jobs_and_its_failure_ends_nothing():
    calls: list[str] = []

    def after() -> None:
        calls.append("after")
        if len(calls) == 2:
            raise RuntimeError("a metrics hiccup")

    telemetry = Telemetry(period_s=0.0, defer_s=0.0, after_round=after)
    try:
        telemetry.submit(calls.append, "job 1").result(timeout=10)
        telemetry.flush(10)
        telemetry.submit(calls.append, "job 2").result(timeout=10)
        telemetry.flush(10)
    finally:
        telemetry.shutdown(timeout_s=5)
    assert calls[:2] == ["job 1", "after"] and "job 2" in calls
    assert calls.index("job 2") < len(calls) - 1 and calls[-1] == "after"


def test_a_tally_writes_once_per_label_set_and_starts_again():
    import numpy as np
    from driftloop_serving._metrics import ServingMetrics, Tally

    metrics = ServingMetrics.create(ray=False)
    tally = Tally(metrics)
    for status in ("200", "200", "422"):
        tally.inc("requests", route="/predict", status=status)
        tally.observe("latency", 0.004, route="/predict")
    tally.inc("decisions", 0, decision="positive")  # nothing to count: no call
    tally.scores(np.array([0.2, 0.99]))
    tally.scores(np.array([0.995]))
    tally.write()
    tally.write()  # nothing new
    value = metrics.registry.get_sample_value
    assert value("driftloop_serving_requests_total", {"route": "/predict", "status": "200"}) == 2
    assert value("driftloop_serving_requests_total", {"route": "/predict", "status": "422"}) == 1
    assert value("driftloop_serving_latency_seconds_count", {"route": "/predict"}) == 3
    assert value("driftloop_serving_decisions_total", {"decision": "positive"}) is None
    assert value("driftloop_serving_scores_total", {"band": "0.2"}) == 1
    assert value("driftloop_serving_scores_total", {"band": "1"}) == 1  # 0.995 > 0.99
