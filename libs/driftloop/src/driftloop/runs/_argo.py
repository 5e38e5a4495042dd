"""The Argo backend: with ``DRIFTLOOP_ARGO_SERVER`` set, runs are Workflows submitted to
an Argo server through Hera's WorkflowsService — a ``workflowTemplateRef`` to
``driftloop-retrain`` with the parameters, under the run's deterministic name, so an
"already exists" answer means the run was submitted before."""

from __future__ import annotations

from driftloop.runs._executor import Submission
from driftloop.settings import Settings

TEMPLATE = "driftloop-retrain"


class ArgoBackend:
    name = "argo"

    def __init__(self, settings: Settings) -> None:
        if not settings.argo_server:
            raise ValueError("the Argo backend needs DRIFTLOOP_ARGO_SERVER")
        self.settings = settings

    def request(self, parameters: dict[str, str], run_id: str) -> object:
        """The WorkflowCreateRequest that :meth:`submit` sends."""
        from hera.workflows.models import (
            Arguments,
            ObjectMeta,
            Parameter,
            Workflow,
            WorkflowCreateRequest,
            WorkflowSpec,
            WorkflowTemplateRef,
        )

        namespace = self.settings.argo_namespace
        labels = {"app.kubernetes.io/part-of": "driftloop", "driftloop/model": parameters["model"]}
        values = [Parameter(name=k, value=v) for k, v in sorted(parameters.items())]
        metadata = ObjectMeta(name=run_id, namespace=namespace, labels=labels)
        spec = WorkflowSpec(
            workflow_template_ref=WorkflowTemplateRef(name=TEMPLATE),
            arguments=Arguments(parameters=values),
        )
        return WorkflowCreateRequest(
            namespace=namespace, workflow=Workflow(metadata=metadata, spec=spec)
        )

    def submit(self, parameters: dict[str, str], run_id: str) -> Submission:
        from hera.exceptions import AlreadyExists
        from hera.workflows.service import WorkflowsService

        token = self.settings.argo_token
        service = WorkflowsService(
            host=self.settings.argo_server,
            token=f"Bearer {token.get_secret_value()}" if token else None,
            namespace=self.settings.argo_namespace,
        )
        try:
            service.create_workflow(self.request(parameters, run_id))  # type: ignore[arg-type]
        except AlreadyExists:
            return Submission(run_id, False, self.name)
        return Submission(run_id, True, self.name)
