"""Boosting progress from a running Ray Train job to the process that started it.

Rank 0 puts its validation metric on a Ray queue (an actor with no CPU) every
``report_every`` rounds, and the driver drains the queue while ``fit`` runs in a thread.
Progress does not go through ``ray.train.report``: each report waits for the Train
controller's next poll (about a second), so a run reports once, its final checkpoint.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

Progress = Callable[[str], None]
T = TypeVar("T")


def describe(report: dict[str, Any], total_rounds: int) -> str | None:
    """One progress line for a report, or None for reports without a round."""
    if "round" not in report:
        return None
    scores = ", ".join(
        f"{k} {v:.4f}" for k, v in sorted(report.items()) if k.startswith("validation-")
    )
    return f"round {report['round']}/{total_rounds}: {scores}"


def run_with_progress(fit: Callable[[Any], T], total_rounds: int, progress: Progress | None) -> T:
    """Call ``fit(queue)`` — the queue for rank 0's progress, or None when nobody
    listens — and print what arrives on it."""
    if progress is None:
        return fit(None)
    from ray.util.queue import Empty, Queue

    queue = Queue(actor_options={"num_cpus": 0})
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = fit(queue)
        except BaseException as exc:  # re-raised in the caller's thread
            outcome["error"] = exc

    worker = threading.Thread(target=target, name="ray-train-fit", daemon=True)
    worker.start()
    try:
        while worker.is_alive() or not queue.empty():
            try:
                report = queue.get(timeout=0.5)
            except Empty:
                continue
            line = describe(report, total_rounds)
            if line:
                progress(line)
        worker.join()
    finally:
        queue.shutdown()
    if "error" in outcome:
        raise outcome["error"]
    value: T = outcome["value"]
    return value
