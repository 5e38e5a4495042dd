"""The serving metrics, in one sink per process.

Inside a Ray Serve replica they go through ``ray.serve.metrics`` to Ray's metrics
exporter, which aggregates every replica on the node's metrics export port with
``application``, ``deployment`` and ``replica`` tags (names there carry Ray's ``ray_``
prefix): what Prometheus scrapes and the alert rules read, whatever the number of
replicas. Outside a replica (the HTTP layer run in-process, a bench baseline) they go to
a Prometheus registry of the process's own, served on ``/metrics``.

Ray's exporter forgets a gauge value that was not reported again within two of Ray's
metrics report intervals (20 s by default), and a replica reports a gauge only when it is
set: ``model_info``, set once when a model loads, vanished from Ray's exporter 20 s later.
:meth:`ServingMetrics.refresh` sets every gauge again to its last value; the replica calls
it more often than Ray reports (``ServeArgs.gauge_refresh_s``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
SCORES = (0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)
"""The upper edges of the score bands ``driftloop_serving_scores`` counts."""
BATCH = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
_BANDS = tuple(f"{edge:g}" for edge in SCORES)


class _Metric:
    """One metric in the process's sink. ``kind`` is counter, gauge or histogram."""

    def __init__(
        self,
        registry: CollectorRegistry,
        ray: bool,
        kind: str,
        name: str,
        doc: str,
        labels: Sequence[str] = (),
        buckets: Sequence[float] = (),
    ) -> None:
        self.kind = kind
        self._labels = tuple(labels)
        self._prom: Any = None
        self._ray: Any = None
        self._last: dict[tuple[tuple[str, str], ...], float] = {}  # a gauge's values by labels
        if not ray:
            if kind == "counter":
                self._prom = Counter(name, doc, self._labels, registry=registry)
            elif kind == "gauge":
                self._prom = Gauge(name, doc, self._labels, registry=registry)
            else:
                self._prom = Histogram(name, doc, self._labels, registry=registry, buckets=buckets)
        else:
            from ray.serve import metrics as ray_metrics

            tags: Any = self._labels or None  # Ray annotates tag_keys as a 1-tuple
            if kind == "counter":
                self._ray = ray_metrics.Counter(name, doc, tag_keys=tags)
            elif kind == "gauge":
                self._ray = ray_metrics.Gauge(name, doc, tag_keys=tags)
            else:
                self._ray = ray_metrics.Histogram(
                    name, doc, boundaries=list(buckets), tag_keys=tags
                )

    def _prom_child(self, labels: dict[str, str]) -> Any:
        return self._prom.labels(**labels) if self._labels else self._prom

    def inc(self, value: float = 1.0, **labels: str) -> None:
        if self._ray is not None:
            self._ray.inc(value, tags=labels or None)
        else:
            self._prom_child(labels).inc(value)

    def set(self, value: float, **labels: str) -> None:
        if self._ray is not None:
            self._last[tuple(sorted(labels.items()))] = value
            self._ray.set(value, tags=labels or None)
        else:
            self._prom_child(labels).set(value)

    def refresh(self) -> None:
        """Report every value this gauge was set to again, unchanged (to Ray; a Prometheus
        registry keeps its values)."""
        if self._ray is not None:
            for labels, value in list(self._last.items()):
                self._ray.set(value, tags=dict(labels) or None)

    def observe(self, value: float, **labels: str) -> None:
        if self._ray is not None:
            self._ray.observe(value, tags=labels or None)
        else:
            self._prom_child(labels).observe(value)


@dataclass(frozen=True)
class ServingMetrics:
    registry: CollectorRegistry
    ray: bool  # exported through Ray (the registry stays empty)
    requests: _Metric
    errors: _Metric
    latency: _Metric
    scores: _Metric
    decisions: _Metric
    batch_size: _Metric
    missing_features: _Metric
    model_info: _Metric
    model_loads: _Metric
    shadow_scores: _Metric
    canary_answers: _Metric
    canary_failures: _Metric
    log_sent: _Metric
    log_dropped: _Metric

    @classmethod
    def create(cls, ray: bool = False) -> ServingMetrics:
        """``ray=True``: through Ray's exporter (inside a replica; ``registry`` stays
        empty); otherwise into a fresh Prometheus registry."""
        r = CollectorRegistry()

        def metric(
            kind: str, name: str, doc: str, *labels: str, buckets: Sequence[float] = ()
        ) -> _Metric:
            return _Metric(r, ray, kind, f"driftloop_serving_{name}", doc, labels, buckets)

        return cls(
            registry=r,
            ray=ray,
            requests=metric("counter", "requests", "HTTP requests", "route", "status"),
            errors=metric("counter", "errors", "HTTP answers >= 400", "route", "status"),
            latency=metric(
                "histogram", "latency_seconds", "Request latency", "route", buckets=LATENCY_S
            ),
            # A counter by band, not a histogram: a histogram takes one call per score, and
            # Ray's recorder cost about 36 us a call (more than scoring the payment), so
            # the telemetry of a batch of 256 spent most of its time there. A batch's
            # scores are counted into their bands first: at most one call per band.
            scores=metric(
                "counter",
                "scores",
                "Scores given, by band: at most the band, above the band below (SCORES)",
                "band",
            ),
            decisions=metric("counter", "decisions", "Scores by decision", "decision"),
            batch_size=metric(
                "histogram", "batch_size", "Transactions per model call", buckets=BATCH
            ),
            missing_features=metric(
                "counter",
                "missing_features",
                "Scored rows whose entity a feature view did not know (defaults used)",
                "view",
            ),
            model_info=metric(
                "gauge", "model_info", "1 for the model version served", "model", "version"
            ),
            model_loads=metric(
                "counter", "model_loads", "Model configurations applied or refused", "outcome"
            ),
            shadow_scores=metric(
                "counter",
                "shadow_scores",
                "Rows the shadow version scored, or failed to (the answers never depend on it)",
                "outcome",
            ),
            canary_answers=metric(
                "counter",
                "canary_answers",
                "Payments the canary version answered, by version and decision",
                "version",
                "decision",
            ),
            canary_failures=metric(
                "counter",
                "canary_failures",
                "Batches the canary failed to score (its customers got the serving answers)",
                "version",
            ),
            log_sent=metric("counter", "prediction_log_sent", "Predictions Kafka acknowledged"),
            log_dropped=metric(
                "counter", "prediction_log_dropped", "Predictions not logged", "reason"
            ),
        )

    def count_scores(self, scores: np.ndarray) -> None:
        """Count ``scores`` (in [0, 1]) into ``scores``' bands: one call per band used."""
        bands = np.searchsorted(SCORES, scores, side="left")  # the first edge >= the score
        for band, count in enumerate(np.bincount(bands, minlength=len(SCORES)).tolist()):
            if count:
                self.scores.inc(count, band=_BANDS[band])

    def refresh(self) -> None:
        """Report the gauges' current values to Ray again (see the module's docstring)."""
        for value in vars(self).values():
            if isinstance(value, _Metric) and value.kind == "gauge":
                value.refresh()


class Tally:
    """Counts and observations made on one thread (the telemetry thread), written to the
    metrics together by :meth:`write` (after each telemetry round): a counter once per
    label set and round, the scores once per band and round, rather than a call for each
    batch or request. Ray's recorder costs tens of microseconds a call: at one client,
    calls per request and per batch cost the telemetry thread 220 us a request."""

    def __init__(self, metrics: ServingMetrics) -> None:
        self.metrics = metrics
        self._counts: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        self._observed: list[tuple[str, float, tuple[tuple[str, str], ...]]] = []
        self._scores: list[np.ndarray] = []

    def inc(self, metric: str, value: float = 1.0, **labels: str) -> None:
        key = (metric, tuple(labels.items()))
        self._counts[key] = self._counts.get(key, 0.0) + value

    def observe(self, metric: str, value: float, **labels: str) -> None:
        self._observed.append((metric, value, tuple(labels.items())))

    def scores(self, scores: np.ndarray) -> None:
        self._scores.append(scores)

    def write(self) -> None:
        """Write what was tallied since the last write, and start again."""
        counts, self._counts = self._counts, {}
        observed, self._observed = self._observed, []
        scores, self._scores = self._scores, []
        m = self.metrics
        for (metric, labels), value in counts.items():
            if value:
                getattr(m, metric).inc(value, **dict(labels))
        for metric, value, labels in observed:
            getattr(m, metric).observe(value, **dict(labels))
        if scores:
            m.count_scores(np.concatenate(scores))
