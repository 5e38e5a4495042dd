"""driftloop's trigger service: drift and performance events → at most one retraining run
per model at a time, by the policy in ``deploy/apps/<model>/trigger.yaml``.

Run it as a process (``driftloop-trigger run``); other services never import it.
"""

from driftloop_trigger._decide import (
    REASONS,
    Decision,
    ModelHistory,
    decide,
    merge_history,
    severity,
)
from driftloop_trigger._policy import Policies, PolicyError, TriggerPolicy, load_policy
from driftloop_trigger._service import TriggerService, parameters_for
from driftloop_trigger._settings import TriggerSettings
from driftloop_trigger._store import DecisionStore, Recorded

__all__ = [
    "REASONS",
    "Decision",
    "DecisionStore",
    "ModelHistory",
    "Policies",
    "PolicyError",
    "Recorded",
    "TriggerPolicy",
    "TriggerService",
    "TriggerSettings",
    "decide",
    "load_policy",
    "merge_history",
    "parameters_for",
    "severity",
]
