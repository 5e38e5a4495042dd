"""driftloop's trigger service: drift and performance events → at most one retraining run
per model at a time, started once enough labelled evidence of the change exists (or
``max_wait`` passed), by the policy in ``deploy/apps/<model>/trigger.yaml``.

Run it as a process (``driftloop-trigger run``); other services never import it.
"""

from driftloop_trigger._decide import (
    REASONS,
    Decision,
    ModelHistory,
    RunOutcome,
    decide,
    merge_history,
    run_outcome,
    severity,
)
from driftloop_trigger._policy import (
    EvidenceRule,
    Policies,
    PolicyError,
    TriggerPolicy,
    load_policy,
)
from driftloop_trigger._service import TriggerService, parameters_for
from driftloop_trigger._settings import TriggerSettings
from driftloop_trigger._store import DecisionStore, Held, Recorded

__all__ = [
    "REASONS",
    "Decision",
    "DecisionStore",
    "EvidenceRule",
    "Held",
    "ModelHistory",
    "Policies",
    "PolicyError",
    "Recorded",
    "RunOutcome",
    "TriggerPolicy",
    "TriggerService",
    "TriggerSettings",
    "decide",
    "load_policy",
    "merge_history",
    "parameters_for",
    "run_outcome",
    "severity",
]
