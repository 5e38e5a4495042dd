"""The stack's Prometheus, asked what it alerted on during the demo: the drift and
performance alerts (deploy/local/prometheus/alerts.yml), when each fired and resolved."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import httpx

from driftloop.settings import Settings
from driftloop.stack import prometheus_url

ALERTS = ("DriftloopDataDrift", "DriftloopPerformanceDrop")
STEP_S = 1.0


@dataclass(frozen=True)
class AlertSpan:
    """One stretch of an alert firing (Prometheus' ``ALERTS`` series, sampled each second:
    the times are those of its rule evaluations, to the evaluation interval)."""

    name: str
    model: str
    fired_at: datetime
    resolved_at: datetime | None  # None: still firing when asked

    def line(self) -> str:
        end = f"resolved {self.resolved_at:%H:%M:%S}" if self.resolved_at else "still firing"
        return f"{self.name} ({self.model}) fired {self.fired_at:%H:%M:%S}, {end}"


class Alerts:
    """Reads the stack's Prometheus; every answer is None when it does not run."""

    def __init__(self, stack: Settings, model: str) -> None:
        self.url = prometheus_url(stack)
        self.model = model

    def firing(self) -> set[str] | None:
        """The drift/performance alerts firing or pending for the model now."""
        try:
            answer = httpx.get(f"{self.url}/api/v1/alerts", timeout=5)
            answer.raise_for_status()
        except httpx.HTTPError:
            return None
        return {
            a["labels"]["alertname"]
            for a in answer.json()["data"]["alerts"]
            if a["labels"].get("alertname") in ALERTS and a["labels"].get("model") == self.model
        }

    def history(self, start: datetime, end: datetime) -> list[AlertSpan] | None:
        """Every stretch each alert fired between ``start`` and ``end``."""
        names = "|".join(ALERTS)
        query = f'ALERTS{{alertstate="firing", alertname=~"{names}", model="{self.model}"}}'
        try:
            answer = httpx.get(
                f"{self.url}/api/v1/query_range",
                timeout=10,
                params={
                    "query": query,
                    "start": start.timestamp(),
                    "end": end.timestamp(),
                    "step": STEP_S,
                },
            )
            answer.raise_for_status()
        except httpx.HTTPError:
            return None
        spans = []
        for series in answer.json()["data"]["result"]:
            times = [float(t) for t, _ in series["values"]]
            spans += _spans(series["metric"]["alertname"], self.model, times, end.timestamp())
        return sorted(spans, key=lambda s: s.fired_at)


def _spans(name: str, model: str, times: list[float], end: float) -> list[AlertSpan]:
    """Runs of consecutive steps. Between two evaluations the series stays visible (the
    lookback), and a resolution ends it at once (a stale marker): a missing step ends a
    stretch, and a stretch that reaches the query's last step is still firing."""
    spans: list[AlertSpan] = []
    first = previous = None
    for t in [*times, None]:
        if (
            first is not None
            and previous is not None
            and (t is None or t - previous > 1.5 * STEP_S)
        ):
            still = t is None and previous > end - STEP_S
            resolved = None if still else _at(previous + STEP_S)
            spans.append(AlertSpan(name, model, _at(first), resolved))
            first = None
        if t is not None and first is None:
            first = t
        previous = t
    return spans


def _at(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)
