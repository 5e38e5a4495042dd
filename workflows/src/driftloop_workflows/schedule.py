"""CronWorkflow per model: scheduled retraining, its schedule in
``deploy/apps/<model>/retrain.yaml``."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from hera.workflows import CronWorkflow, Parameter
from hera.workflows import models as m
from pydantic import BaseModel, ConfigDict, Field

from driftloop_workflows.retrain import NAME


class RetrainSchedule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    schedule: str = Field(pattern=r"^\S+ \S+ \S+ \S+ \S+$", description="cron, 5 fields")
    timezone: str = "UTC"
    window: str = Field("7d", pattern=r"^\d+[dhm]$")
    concurrency_policy: Literal["Allow", "Forbid", "Replace"] = "Forbid"
    promote_as: Literal["serving", "shadow"] = Field(
        "serving",
        description="how the promote step declares a version that passed the gate (read "
        "there by driftloop.deployments.promote_as): as the serving version, or as its "
        "shadow, scored beside it on live traffic",
    )


def load_schedule(path: Path) -> RetrainSchedule:
    import yaml

    return RetrainSchedule.model_validate(yaml.safe_load(path.read_text()))


def retrain_cron(
    model: str, schedule: RetrainSchedule, namespace: str = "driftloop"
) -> CronWorkflow:
    return CronWorkflow(
        name=f"retrain-{model}",
        namespace=namespace,
        # `schedules`: Argo Workflows 3.6 takes it beside the deprecated `schedule`, 4.x
        # takes only it (and requires it) — the one spelling both accept.
        schedules=[schedule.schedule],
        timezone=schedule.timezone,
        concurrency_policy=schedule.concurrency_policy,
        starting_deadline_seconds=3600,
        workflow_template_ref=m.WorkflowTemplateRef(name=NAME),
        arguments=[
            Parameter(name="model", value=model),
            Parameter(name="reason", value="schedule"),
            Parameter(name="window", value=schedule.window),
        ],
        labels={"app.kubernetes.io/part-of": "driftloop", "driftloop/model": model},
    )
