"""Test tiers follow the directory: tests/unit, tests/integration, tests/e2e (and tests/k8s,
when it exists). Each tier marks its tests and gives them a default timeout; a module or
test that needs more (or less) says so with its own ``pytest.mark.timeout``."""

from __future__ import annotations

from pathlib import Path

import pytest

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
