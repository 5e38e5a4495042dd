"""Boosting progress from a running Ray Train job to the process that started it.

Ray Train calls a :class:`UserCallback` on its controller actor, not in the driver; the
callback forwards each report through a Ray queue (an actor with no CPU), and the driver
drains the queue while ``fit`` runs in a thread. The reports themselves stay sparse —
each ``ray.train.report`` costs about a second.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

Progress = Callable[[str], None]
T = TypeVar("T")


def relay_callback(queue: Any) -> Any:
    """A Ray Train callback that puts each round's metrics (rank 0's) on ``queue``."""
    from ray.train import UserCallback

    class Relay(UserCallback):
        def after_report(
            self, run_context: Any, metrics: list[dict[str, Any]], checkpoint: Any
        ) -> None:
            if metrics:
                queue.put_nowait(dict(metrics[0]))

    return Relay()


def describe(report: dict[str, Any], total_rounds: int) -> str | None:
    """One progress line for a report, or None for reports without a round."""
    if "round" not in report:
        return None
    scores = ", ".join(
        f"{k} {v:.4f}" for k, v in sorted(report.items()) if k.startswith("validation-")
    )
    return f"round {report['round']}/{total_rounds}: {scores}"


def run_with_progress(fit: Callable[[Any], T], total_rounds: int, progress: Progress | None) -> T:
    """Call ``fit(callback)`` — the callback to hand to Ray Train, or None when nobody
    listens — and print its reports as they arrive."""
    if progress is None:
        return fit(None)
    from ray.util.queue import Empty, Queue

    queue = Queue(actor_options={"num_cpus": 0})
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = fit(relay_callback(queue))
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
