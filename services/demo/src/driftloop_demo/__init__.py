"""The whole loop on the local stack, in one command (``driftloop-demo run``, ``make demo``):
labelled history into Feast, v1 trained on Ray and promoted by a git commit, synced to Ray
Serve, traffic through the endpoint and Kafka, a drift scenario, and — without anyone
touching anything — a drift event, one retraining run, a promotion commit, a sync, and v2
serving. Ends with a terminal summary and an HTML report."""

from driftloop_demo._config import DemoConfig
from driftloop_demo._loop import DemoResult, LoopNotClosed, run_demo, tear_down
from driftloop_demo._report import phases, summary_lines, write_report

__all__ = [
    "DemoConfig",
    "DemoResult",
    "LoopNotClosed",
    "phases",
    "run_demo",
    "summary_lines",
    "tear_down",
    "write_report",
]
