"""SIGKILLs during the loop: each named part of the system is killed once, at the moment
it holds the most state in flight, and started again — the loop must still close, with
every count reconciled.

When each one dies:

* ``stream``  — halfway to the onset, while it folds transactions into features;
* ``replica`` — at 80 % of the way to the onset: a Serve replica of the model, under
  traffic (Serve starts its replacement; callers retry);
* ``monitor`` — 20 s after the onset, with drifting rows in its open window;
* ``trigger`` — as soon as the first drift event is on the topic, while it decides;
* ``sync``    — as soon as the promotion commit is on main, before it has applied it.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from driftloop.raycluster import dashboard_request
from driftloop.settings import Settings

FAULTS = ("stream", "replica", "monitor", "trigger", "sync")
"""In the order they fire."""


@dataclass
class FaultRecord:
    name: str
    killed_at: datetime
    pid: int
    back_at: datetime | None = None  # restarted (a service) or replaced (a replica)
    detail: str = ""

    @property
    def down_s(self) -> float | None:
        return (self.back_at - self.killed_at).total_seconds() if self.back_at else None


def replicas(settings: Settings, app: str) -> list[dict[str, Any]]:
    """The live Serve replica actors of application ``app`` (actor_id, pid, state)."""
    query = urlencode(
        {"limit": 1000, "detail": 1, "filter_keys": "state", "filter_predicates": "=",
         "filter_values": "ALIVE"}
    )  # fmt: skip
    answer = dashboard_request(settings, "GET", f"/api/v0/actors?{query}")
    actors: list[dict[str, Any]] = answer["data"]["result"]["result"]
    return [a for a in actors if str(a.get("class_name", "")).startswith(f"ServeReplica:{app}:")]


def kill_replica(settings: Settings, app: str) -> tuple[int, set[str]]:
    """SIGKILL the process of one replica of ``app``; return its pid and the actor ids
    that were alive before (a replacement is a replica not among them)."""
    live = replicas(settings, app)
    if not live:
        raise RuntimeError(f"no live replica of Serve application {app!r} to kill")
    pid = int(live[0]["pid"])
    os.kill(pid, signal.SIGKILL)
    return pid, {str(a["actor_id"]) for a in live}


@dataclass
class FaultPlan:
    """Which faults are still to fire, and when; ``due`` names those whose time has come."""

    names: tuple[str, ...]
    traffic: datetime
    onset: datetime
    fired: list[FaultRecord] = field(default_factory=list)

    def due(self, marks: dict[str, datetime], now: datetime) -> list[str]:
        done = {r.name for r in self.fired}
        lead = self.onset - self.traffic
        when: dict[str, datetime | None] = {
            "stream": self.traffic + lead * 0.5,
            "replica": self.traffic + lead * 0.8,
            "monitor": self.onset + timedelta(seconds=20),
            "trigger": marks.get("detected"),
            "sync": marks.get("promoted"),
        }
        return [
            name
            for name in self.names
            if name not in done and (at := when[name]) is not None and now >= at
        ]

    def record(self, name: str, pid: int, detail: str = "") -> FaultRecord:
        fault = FaultRecord(name, datetime.now(UTC), pid, detail=detail)
        self.fired.append(fault)
        return fault


def wait_for_replacement(
    settings: Settings, app: str, before: set[str], timeout_s: float = 120
) -> str:
    """Block until a replica not in ``before`` is alive; return its actor id."""
    deadline = time.monotonic() + timeout_s
    while True:
        fresh = [a for a in replicas(settings, app) if a["actor_id"] not in before]
        if fresh:
            return str(fresh[0]["actor_id"])
        if time.monotonic() > deadline:
            raise TimeoutError(f"no replacement replica of {app!r} after {timeout_s:g} s")
        time.sleep(0.5)
