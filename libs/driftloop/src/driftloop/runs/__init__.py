"""Workflow runs: the local executor on Ray (the default) and the Argo backend.

``backend(settings)`` picks by settings: ``DRIFTLOOP_ARGO_SERVER`` set → Argo, else local.
``run_id_for_event`` and ``manual_run_id`` give runs their (idempotency) names.
``WaitingStore`` holds the trigger's word that a model's run waits for evidence.
"""

from __future__ import annotations

import hashlib
import re
import uuid

from driftloop.events import utcnow
from driftloop.runs._argo import ArgoBackend, SubmitError
from driftloop.runs._executor import MAX_DRIVERS, LocalExecutor, Submission, template_path
from driftloop.runs._jobs import RayJobs, settings_environment
from driftloop.runs._state import AlreadySubmitted, RunRecord, RunStore, StepState
from driftloop.runs._template import (
    IN_DRIVER,
    LOCAL_EXECUTOR,
    UnsupportedFeature,
    WorkflowTemplate,
    load_template,
)
from driftloop.runs._waiting import Waiting, WaitingStore
from driftloop.settings import Settings


def backend(settings: Settings) -> LocalExecutor | ArgoBackend:
    return ArgoBackend(settings) if settings.argo_server else LocalExecutor(settings)


def run_id_for_event(event_id: str) -> str:
    """The run an event starts: the same id for every delivery of that event
    (``retrain-<event_id>`` when the id is a valid Kubernetes name, as driftloop's UUID
    event ids are; other ids are hashed). The opt-in Argo Events Sensor, which replaces the
    trigger, names runs per (model, version, window) instead (driftloop_workflows.events)."""
    if re.fullmatch(r"[a-z0-9]([a-z0-9-]{0,52}[a-z0-9])?", event_id):
        return f"retrain-{event_id}"
    return f"retrain-{hashlib.sha256(event_id.encode()).hexdigest()[:20]}"


def manual_run_id(model: str) -> str:
    return f"retrain-{model}-{utcnow():%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:4]}"


__all__ = [
    "IN_DRIVER",
    "LOCAL_EXECUTOR",
    "MAX_DRIVERS",
    "AlreadySubmitted",
    "ArgoBackend",
    "LocalExecutor",
    "RayJobs",
    "RunRecord",
    "RunStore",
    "StepState",
    "Submission",
    "SubmitError",
    "UnsupportedFeature",
    "Waiting",
    "WaitingStore",
    "WorkflowTemplate",
    "backend",
    "load_template",
    "manual_run_id",
    "run_id_for_event",
    "settings_environment",
    "template_path",
]
