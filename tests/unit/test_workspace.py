"""The workspace's packages import, and importing them does nothing."""

from __future__ import annotations

import importlib
import tomllib
from pathlib import Path

from typer.testing import CliRunner

from driftloop.cli import app

ROOT = Path(__file__).resolve().parents[2]
MODULES = [
    "driftloop",
    "driftloop.kafka",
    "driftloop.stack",
    "driftloop.cli",
    "driftloop.metrics",
    "driftloop.models",
    "driftloop.features",
    "driftloop_serving",
    "driftloop_stream",
    "driftloop_monitor",
    "driftloop_trigger",
    "driftloop_sync",
    "driftloop_simulator",
    "driftloop_demo",
    "driftloop_features",
    "driftloop_workflows",
]


def test_every_workspace_member_is_a_package_with_its_own_pyproject():
    root = tomllib.loads((ROOT / "pyproject.toml").read_text())
    members = root["tool"]["uv"]["workspace"]["members"]
    found = sorted(
        p.parent.relative_to(ROOT).as_posix()
        for pattern in members
        for p in ROOT.glob(f"{pattern}/pyproject.toml")
    )
    assert found == sorted(
        [
            "features",
            "libs/driftloop",
            "services/demo",
            "services/monitor",
            "services/serving",
            "services/simulator",
            "services/stream",
            "services/sync",
            "services/trigger",
            "workflows",
        ]
    )


def test_every_package_imports():
    """Each module imports in-process; that importing one *does* nothing (no file, no
    directory) is checked in a fresh interpreter by tests/integration/test_imports.py."""
    for module in MODULES:
        importlib.import_module(module)


# The demo is the one package that composes the others: it drives the simulator and runs
# the services as processes, as a user would. No service may import it.
COMPOSERS = {"demo"}


def test_services_do_not_import_each_other():
    services = [p.name for p in (ROOT / "services").iterdir() if p.is_dir()]
    for service in set(services) - COMPOSERS:
        for source in (ROOT / "services" / service).rglob("*.py"):
            text = source.read_text()
            for other in services:
                if other != service:
                    assert f"driftloop_{other}" not in text, f"{source} imports driftloop_{other}"


def test_cli_lists_its_commands():
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("up", "down", "status", "topics", "schemas"):
        assert command in result.output


def test_cli_writes_schemas(tmp_path):
    result = CliRunner().invoke(app, ["schemas", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    written = {p.name.removesuffix(".schema.json") for p in tmp_path.glob("*.schema.json")}
    assert written == {"DeadLetter", "DriftEvent", "Label", "Prediction", "PredictionBatch",
                       "Transaction", "WorkflowEvent"}  # fmt: skip
