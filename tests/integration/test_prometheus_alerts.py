"""The drift alert through a real Prometheus: the server `make prometheus` builds, run on
the configuration `driftloop up` writes (the project's rendered alert rules, the services
found through the targets file a launcher writes), scraping the monitor's own metrics
registry served on loopback. The monitor's drifting gauge goes to 1: DriftloopDataDrift
fires; back to 0: it resolves — and the demo's reading of ``ALERTS`` finds both times."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml
from driftloop_demo._alerts import Alerts
from driftloop_monitor._metrics import MonitorMetrics

from driftloop.metrics import MetricsServer, serve_metrics
from driftloop.settings import Settings
from driftloop.stack._prometheus import register_targets, wait_ready, write_config
from tests.polling import wait_for

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / ".driftloop" / "tools" / "bin" / "prometheus"
INTERVAL = "1s"  # scrape and evaluation, for the test (the stack's are 5 s)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def stack(tmp_path: Path) -> Settings:
    if not PROMETHEUS.is_file():
        pytest.fail(f"{PROMETHEUS} is missing: `make prometheus` builds it (`make up` does)")
    return Settings(
        state_dir=tmp_path / "state",
        deploy_dir=ROOT / "deploy",
        bind_host="127.0.0.1",
        prometheus_port=_free_port(),
    )


@pytest.fixture
def monitor(stack: Settings) -> Iterator[MonitorMetrics]:
    """The monitor's metrics registry on a port of its own, registered as a launcher does."""
    metrics = MonitorMetrics.create()
    metrics.drifting.labels("fraud", "data").set(0)
    server: MetricsServer = serve_metrics(stack, 0, metrics.registry)
    register_targets(stack, "test", {"monitor": server.port})
    yield metrics
    server.shutdown()


@pytest.fixture
def prometheus(stack: Settings, monitor: MonitorMetrics) -> Iterator[subprocess.Popen[bytes]]:
    config_path = write_config(stack)
    config = yaml.safe_load(config_path.read_text())
    config["global"] = {"scrape_interval": INTERVAL, "evaluation_interval": INTERVAL}
    config_path.write_text(yaml.safe_dump(config))
    log = (stack.state_dir / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [
            str(PROMETHEUS),
            f"--config.file={config_path}",
            f"--storage.tsdb.path={stack.state_dir / 'prometheus' / 'data'}",
            f"--web.listen-address={stack.bind_host}:{stack.prometheus_port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_ready(stack, timeout_s=20)
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


def _get(stack: Settings, path: str) -> Any:
    url = f"http://{stack.bind_host}:{stack.prometheus_port}{path}"
    with urllib.request.urlopen(url, timeout=5) as answer:
        return json.load(answer)["data"]


def _drift_alerts(stack: Settings) -> list[dict[str, Any]]:
    return [
        a
        for a in _get(stack, "/api/v1/alerts")["alerts"]
        if a["labels"]["alertname"] == "DriftloopDataDrift"
    ]


def test_the_data_drift_alert_fires_and_resolves(
    stack: Settings, monitor: MonitorMetrics, prometheus: subprocess.Popen[bytes]
) -> None:
    # Prometheus listens on loopback only, and loaded every rule of the rendered file.
    listening = {c.laddr for c in psutil.Process(prometheus.pid).net_connections("inet")}
    assert listening and {address.ip for address in listening} <= {"127.0.0.1"}
    rules = {r["name"] for g in _get(stack, "/api/v1/rules")["groups"] for r in g["rules"]}
    assert {"DriftloopDataDrift", "DriftloopPerformanceDrop", "DriftloopServiceDown"} <= rules

    # The monitor is found through the targets file and scraped, not drifting yet.
    def scraped() -> bool:
        result = _get(stack, '/api/v1/query?query=driftloop_monitor_drifting{kind="data"}')
        return bool(result["result"])

    wait_for("the monitor's metrics scraped", scraped, 15, every=0.25)
    [target] = [
        t
        for t in _get(stack, "/api/v1/targets")["activeTargets"]
        if t["labels"]["job"] == "local/driftloop-services"
    ]
    assert target["labels"]["service"] == "monitor" and target["health"] == "up"
    time.sleep(2)  # two evaluations on the quiet value
    assert _drift_alerts(stack) == []

    start = datetime.now(UTC)
    monitor.drifting.labels("fraud", "data").set(1)
    [alert] = wait_for(
        "DriftloopDataDrift firing",
        lambda: [a for a in _drift_alerts(stack) if a["state"] == "firing"],
        15,
        every=0.25,
    )
    assert alert["labels"]["model"] == "fraud" and alert["labels"]["severity"] == "warning"
    assert alert["annotations"]["summary"] == "Data drift on fraud"

    monitor.drifting.labels("fraud", "data").set(0)
    wait_for("DriftloopDataDrift resolved", lambda: _drift_alerts(stack) == [], 15, every=0.25)
    time.sleep(1.5)  # the stale marker of ALERTS lands with the next evaluation

    # The demo's summary reads the same history from the ALERTS series.
    spans = Alerts(stack, "fraud").history(start, datetime.now(UTC))
    assert spans is not None
    [span] = spans
    assert span.name == "DriftloopDataDrift" and span.resolved_at is not None
    assert start <= span.fired_at < span.resolved_at <= datetime.now(UTC)
