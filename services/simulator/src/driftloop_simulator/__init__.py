"""The driftloop simulator: card payments with fraud, delayed labels and drift scenarios.

``backfill`` writes a labelled history as parquet; ``run_stream`` sends live traffic to
Kafka. The command line is ``driftloop-simulator`` (:mod:`driftloop_simulator.cli`).
"""

from driftloop_simulator._backfill import (
    TRANSACTION_COLUMNS,
    BackfillConfig,
    BackfillResult,
    backfill,
)
from driftloop_simulator._catalog import FRAUD_PATTERNS
from driftloop_simulator._generate import GeneratorConfig
from driftloop_simulator._predict import failure_summary
from driftloop_simulator._scenarios import (
    ActiveScenario,
    ScenarioChoice,
    ScenarioError,
    ScenarioFile,
    choose_scenario,
    default_scenarios_path,
    load_scenarios,
)
from driftloop_simulator._stream import StreamConfig, StreamStats, run_stream
from driftloop_simulator._world import World, WorldConfig, build_world

__all__ = [
    "FRAUD_PATTERNS",
    "TRANSACTION_COLUMNS",
    "ActiveScenario",
    "BackfillConfig",
    "BackfillResult",
    "GeneratorConfig",
    "ScenarioChoice",
    "ScenarioError",
    "ScenarioFile",
    "StreamConfig",
    "StreamStats",
    "World",
    "WorldConfig",
    "backfill",
    "build_world",
    "choose_scenario",
    "default_scenarios_path",
    "failure_summary",
    "load_scenarios",
    "run_stream",
]
