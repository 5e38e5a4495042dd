"""Test tiers follow the directory: tests/unit, tests/integration, tests/e2e (and tests/k8s,
when it exists). Each tier marks its tests and gives them a default timeout; a module or
test that needs more (or less) says so with its own ``pytest.mark.timeout``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import driftloop.features  # noqa: F401  Feast before any test module imports it (features/_feast.py)

ROOT = Path(__file__).resolve().parent.parent
TIERS = {"unit": 60, "integration": 120, "e2e": 600, "k8s": 600}
"""Tier → default per-test timeout in seconds (setup and teardown included): a guard against
a hang, not a measure of speed (the first import of Feast in a unit process takes 10-20 s on
a busy machine; speed is measured by `make test-unit` and the benches)."""


OWNS_THE_STACK = frozenset(
    {
        "tests/e2e/test_loop.py",
        "tests/integration/test_sync.py",
        "tests/integration/test_rollback_serving.py",
        "tests/integration/test_sync_failures.py",
        "tests/integration/test_sync_refusals.py",
        "tests/integration/test_stack.py",
        "tests/integration/test_broker_restart.py",
    }
)
"""Modules that change what every test shares: the loop, the sync tests and the rollback
under load apply Serve applications through Ray's REST API, which replaces every
application deployed that way; test_broker_restart stops the broker; test_stack starts
and stops stacks of its own beside the running one. When `make test` runs two processes
(pytest-xdist, ``-n 2``), these run one after another in one of them, the ``stack`` lane,
and the other modules in the other."""

BALANCE = frozenset(
    {
        "tests/e2e/test_notebook.py",
        "tests/integration/test_point_in_time.py",
        "tests/integration/test_runs_recovery.py",
        "tests/integration/test_monitor_quality.py",
        "tests/integration/test_rollback.py",
        "tests/integration/test_shadow_verdict.py",
    }
)
"""Modules that need no lane of their own, run in the ``stack`` lane to even out the two
lanes' times (measured: stack 578 s, shared 890 s without the first two here; stack 688 s,
shared 986 s without the last two, 75 s and 64 s)."""


def lane(nodeid: str) -> str:
    """The lane of a test: ``stack`` for the modules above, ``shared`` for the others."""
    module = nodeid.split("::", 1)[0]
    return "stack" if module in OWNS_THE_STACK or module in BALANCE else "shared"


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Two lanes, each module whole and in collection order in one worker (xdist's loadscope
    scheduling with the lane as the scope). xdist's own ``loadgroup`` would do the same
    from marks, but pytest 9.2 keeps node ids where xdist 3.8 no longer rewrites them."""
    from xdist.scheduler import LoadScopeScheduling

    class Lanes(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            return lane(nodeid)

    return Lanes(config, log)


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
    if terminalreporter.config.getoption("numprocesses", None):
        lanes: dict[str, float] = {}
        for module, seconds in _SPENT.items():
            lanes[lane(module)] = lanes.get(lane(module), 0.0) + seconds
        write(
            "lanes (each one process, its modules one after another): "
            + "  ".join(f"{name} {seconds:.1f} s" for name, seconds in sorted(lanes.items()))
        )
    for module, seconds in sorted(_SPENT.items(), key=lambda kv: -kv[1])[:15]:
        write(f"{seconds:8.1f} s  {module}")
