"""Test tiers follow the directory: tests/unit, tests/integration, tests/e2e (and tests/k8s,
when it exists). Each tier marks its tests and gives them a default timeout; a module or
test that needs more (or less) says so with its own ``pytest.mark.timeout``."""

from __future__ import annotations

from pathlib import Path

import pytest

import driftloop.features  # noqa: F401  Feast before any test module imports it (features/_feast.py)

ROOT = Path(__file__).resolve().parent.parent
TIERS = {"unit": 60, "integration": 120, "e2e": 600, "k8s": 600}
"""Tier → default per-test timeout in seconds (setup and teardown included): a guard against
a hang, not a measure of speed (the first import of Feast in a unit process takes 10-20 s on
a busy machine; speed is measured by `make test-unit` and the benches)."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        tier = Path(str(item.fspath)).relative_to(ROOT / "tests").parts[0]
        if tier in TIERS:
            item.add_marker(getattr(pytest.mark, tier))
            if item.get_closest_marker("timeout") is None:
                item.add_marker(pytest.mark.timeout(TIERS[tier]))


_SPENT: dict[str, float] = {}
"""Seconds per test module (setup, call and teardown of its tests), for the summary."""


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    module = report.nodeid.split("::", 1)[0]
    _SPENT[module] = _SPENT.get(module, 0.0) + report.duration


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Each tier's time and the 15 costliest modules: what `--durations` (one phase of
    one test at a time) does not add up, and what the tiers' table in tests/README.md
    quotes."""
    if not _SPENT:
        return
    tiers: dict[str, float] = {}
    for module, seconds in _SPENT.items():
        tier = Path(module).parts[1] if module.startswith("tests/") else "other"
        tiers[tier] = tiers.get(tier, 0.0) + seconds
    write = terminalreporter.write_line
    terminalreporter.section("time per tier and costliest modules")
    write("  ".join(f"{tier} {seconds:.1f} s" for tier, seconds in sorted(tiers.items())))
    for module, seconds in sorted(_SPENT.items(), key=lambda kv: -kv[1])[:15]:
        write(f"{seconds:8.1f} s  {module}")
