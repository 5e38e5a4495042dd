"""``make render`` / ``make check-render``: the Argo manifests under deploy/k8s, from code.

    python -m driftloop_workflows.render [--check] [--root DIR]

``--check`` writes nothing and exits 1 naming every file that is missing or stale.
WorkflowTemplate and CronWorkflows go to ``base/workflows``; the Argo Events EventSource
and Sensor to the opt-in component ``components/argo-events`` (see ``events.py``).

``--serve-config`` renders only the RayService's ``serveConfigV2`` patch: all that a change
of the ``serve.yaml`` files moves, and all that a promotion commits beside its
``serve.yaml``. It imports no Hera (whose Argo models take most of a full render's
start-up: 9 s of 27 s wall on two busy cores, against 4.7 s for this part's imports).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import yaml

from driftloop_workflows.rayservice import PATCH, serve_config_patch

OUT = Path("deploy/k8s/base/workflows")
HEADER = "# Rendered by `make render` from workflows/; do not edit by hand.\n"
RULES = Path("deploy/k8s/base/monitoring/rules.yaml")
LOCAL_RULES = "../../../local/prometheus/alerts.yml"  # deploy/local/prometheus, from OUT


def local_alert_rules(root: Path) -> str:
    """Every group of the PrometheusRules in ``RULES``, as a plain Prometheus rule file."""
    groups = [
        group
        for document in yaml.safe_load_all((root / RULES).read_text())
        if document and document.get("kind") == "PrometheusRule"
        for group in document["spec"]["groups"]
    ]
    return f"# The alert rules of the local Prometheus: the groups of {RULES}.\n" + yaml.safe_dump(
        {"groups": groups}, sort_keys=False, width=100
    )


def _events_manifest(kind: str, model: Any) -> str:
    from driftloop_workflows.events import API_VERSION

    body = {"apiVersion": API_VERSION, "kind": kind, **model.dict(exclude_none=True, by_alias=True)}
    return yaml.safe_dump(body, sort_keys=False)


def serve_manifests(root: Path) -> dict[str, str]:
    """File name → content of what the ``serve.yaml`` files render to: the RayService's
    ``serveConfigV2`` patch (beside, not in, ``OUT``)."""
    return {PATCH: HEADER + serve_config_patch(root)}


def manifests(root: Path) -> dict[str, str]:
    """File name → content of every rendered manifest."""
    from driftloop_workflows.events import (
        COMPONENT,
        drift_event_source,
        load_rules,
        retrain_sensor,
    )
    from driftloop_workflows.retrain import retrain_template
    from driftloop_workflows.schedule import load_schedule, retrain_cron

    events = os.path.relpath(COMPONENT, OUT) + "/"  # the Argo Events component, from OUT
    out = {
        "retrain-template.yaml": retrain_template().to_yaml(),
    }
    # Argo Events: an opt-in component, for clusters that run it instead of the trigger.
    rules = load_rules(root / "deploy" / "apps")
    out[events + "drift-eventsource.yaml"] = _events_manifest("EventSource", drift_event_source())
    out[events + "retrain-sensor.yaml"] = _events_manifest("Sensor", retrain_sensor(rules))
    for schedule in sorted((root / "deploy" / "apps").glob("*/retrain.yaml")):
        model = schedule.parent.name
        out[f"retrain-cron-{model}.yaml"] = retrain_cron(model, load_schedule(schedule)).to_yaml()
    # The local Prometheus's alert rules: the PrometheusRules' groups, one source for both
    # (in a checkout that has both; a deployment repository may hold deploy/apps alone).
    if (root / RULES).is_file() and (root / OUT / LOCAL_RULES).parent.is_dir():
        out[LOCAL_RULES] = local_alert_rules(root)
    return {**{name: HEADER + text for name, text in out.items()}, **serve_manifests(root)}


def render(root: Path, check: bool, serve_config_only: bool = False) -> list[str]:
    """Write (or, with ``check``, compare) the manifests; the stale file names. With
    ``serve_config_only``, only :func:`serve_manifests`' (and no other file is removed)."""
    directory = root / OUT
    expected = serve_manifests(root) if serve_config_only else manifests(root)
    stale = []
    for name, text in expected.items():
        path = directory / name
        if not path.is_file() or path.read_text() != text:
            stale.append(str(OUT / name))
            if not check:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
    swept = directory.is_dir() and not serve_config_only
    for path in sorted(directory.glob("*.yaml")) if swept else []:
        if path.name not in expected:
            stale.append(f"{OUT / path.name} (no longer rendered)")
            if not check:
                path.unlink()
    return stale


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--root", type=Path, default=Path.cwd())
    parser.add_argument(
        "--serve-config", action="store_true", help="only the RayService's serveConfigV2 patch"
    )
    args = parser.parse_args()
    stale = render(args.root, args.check, serve_config_only=args.serve_config)
    if args.check and stale:
        print("stale rendered files (run `make render`):", *stale, sep="\n  ", file=sys.stderr)
        sys.exit(1)
    for name in stale:
        print(f"rendered {name}")


if __name__ == "__main__":
    main()
