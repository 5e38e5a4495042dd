"""driftloop's shared library: settings, event contracts, Kafka I/O, metrics and the stack.

Import what you need from here or from the public submodules (``driftloop.kafka``,
``driftloop.stack``); modules whose names start with ``_`` are private.
"""

from driftloop.events import (
    CONTRACTS,
    ColumnDrift,
    DeadLetter,
    DriftEvent,
    Event,
    Label,
    Prediction,
    PredictionBatch,
    Transaction,
    Window,
    WorkflowEvent,
    stable_id,
)
from driftloop.ledger import Ledger
from driftloop.metrics import MetricsServer, serve_metrics
from driftloop.settings import TOPICS, Settings, get_settings

__all__ = [
    "CONTRACTS",
    "TOPICS",
    "ColumnDrift",
    "DeadLetter",
    "DriftEvent",
    "Event",
    "Label",
    "Ledger",
    "MetricsServer",
    "Prediction",
    "PredictionBatch",
    "Settings",
    "Transaction",
    "Window",
    "WorkflowEvent",
    "get_settings",
    "serve_metrics",
    "stable_id",
]
