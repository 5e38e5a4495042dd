"""The local Prometheus: its configuration in the state directory, and the scrape targets
that whoever starts the services writes beside it (file-based service discovery).

``deploy/local/prometheus/prometheus.yml`` is the committed configuration (promtool checks
it); ``driftloop up`` writes a copy to ``<state>/prometheus/prometheus.yml`` with the rule
files made absolute and the addresses taken from the settings, so the relative
``targets/*.json`` of its file_sd job means ``<state>/prometheus/targets/``. Each launcher of
services (``driftloop services start``, the demo) writes one JSON file there naming the
metrics port of every service it started, and removes it when it stops them: Prometheus
scrapes services on whatever port they got.
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from driftloop.settings import Settings

SELF_JOB = "prometheus"


def prometheus_dir(settings: Settings) -> Path:
    return settings.state_dir / "prometheus"


def targets_dir(settings: Settings) -> Path:
    return prometheus_dir(settings) / "targets"


def prometheus_url(settings: Settings) -> str:
    return f"http://{settings.bind_host}:{settings.prometheus_port}"


def write_config(settings: Settings) -> Path:
    """Write ``<state>/prometheus/prometheus.yml`` from the committed one; its path."""
    source = settings.deploy_dir / "local" / "prometheus" / "prometheus.yml"
    config: dict[str, Any] = yaml.safe_load(source.read_text())
    config["rule_files"] = [str(source.parent / name) for name in config.get("rule_files", [])]
    for job in config.get("scrape_configs", []):
        if job["job_name"] == SELF_JOB:
            job["static_configs"] = [
                {"targets": [f"{settings.bind_host}:{settings.prometheus_port}"]}
            ]
    directory = prometheus_dir(settings)
    targets_dir(settings).mkdir(parents=True, exist_ok=True)
    path = directory / "prometheus.yml"
    header = f"# Written by `driftloop up` from {source}; edit that file instead.\n"
    _replace(path, header + yaml.safe_dump(config, sort_keys=False))
    return path


def register_targets(
    settings: Settings, launcher: str, ports: dict[str, int], labels: dict[str, str] | None = None
) -> Path:
    """Tell the stack's Prometheus which port each service of ``launcher`` listens on
    (``settings`` are the stack's: its state directory holds the targets)."""
    groups = [
        {
            "targets": [f"{settings.bind_host}:{port}"],
            "labels": {"service": name, "launcher": launcher, **(labels or {})},
        }
        for name, port in sorted(ports.items())
    ]
    path = targets_dir(settings) / f"{launcher}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    _replace(path, json.dumps(groups, indent=1) + "\n")
    return path


def unregister_targets(settings: Settings, launcher: str) -> None:
    (targets_dir(settings) / f"{launcher}.json").unlink(missing_ok=True)


def wait_ready(settings: Settings, timeout_s: float = 60) -> int:
    """Until Prometheus answers ready; the number of alerting rules it loaded."""
    url = prometheus_url(settings)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            rules = f"{url}/api/v1/rules?type=alert"  # http, from the settings
            with urllib.request.urlopen(rules, timeout=2) as answer:  # noqa: S310
                groups = json.load(answer)["data"]["groups"]
                return sum(len(g["rules"]) for g in groups)
        except (OSError, ValueError, KeyError):
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"Prometheus did not answer on {url} in {timeout_s:g} s; "
                    f"see {settings.state_dir / 'logs' / 'prometheus.log'}"
                ) from None
            time.sleep(0.3)


def health(settings: Settings) -> dict[str, Any] | None:
    """Its scrape targets (up/down per job) and the alerts firing; None if it does not answer."""
    url = prometheus_url(settings)
    try:
        with urllib.request.urlopen(f"{url}/api/v1/targets", timeout=2) as answer:  # noqa: S310
            targets = json.load(answer)["data"]["activeTargets"]
        with urllib.request.urlopen(f"{url}/api/v1/alerts", timeout=2) as answer:  # noqa: S310
            alerts = json.load(answer)["data"]["alerts"]
    except (OSError, ValueError, KeyError):
        return None
    jobs: dict[str, dict[str, int]] = {}
    for target in targets:
        counts = jobs.setdefault(target["labels"].get("job", "?"), {"up": 0, "down": 0})
        counts["up" if target["health"] == "up" else "down"] += 1
    firing = sorted({a["labels"]["alertname"] for a in alerts if a.get("state") == "firing"})
    return {"targets": jobs, "firing": firing}


def _replace(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` whole: Prometheus never reads half a file."""
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.write_text(text)
    partial.replace(path)
