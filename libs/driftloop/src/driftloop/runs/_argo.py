"""The Argo backend: with ``DRIFTLOOP_ARGO_SERVER`` set, runs are Workflows submitted to
an Argo server through Hera's WorkflowsService — a ``workflowTemplateRef`` to
``driftloop-retrain`` with the parameters, under the run's deterministic name, so an
"already exists" answer means the run was submitted before.

The server's certificate is verified (requests' ``REQUESTS_CA_BUNDLE`` names the CA of a
server whose certificate is not publicly trusted, as Argo's self-made one is not); the
token (``DRIFTLOOP_ARGO_TOKEN``) is a Kubernetes bearer token of an account that may create
Workflows, which the server passes on to Kubernetes (``--auth-mode client``)."""

from __future__ import annotations

from driftloop.runs._executor import Submission
from driftloop.settings import Settings

TEMPLATE = "driftloop-retrain"


class SubmitError(RuntimeError):
    """The Argo server refused the run or could not be reached; the message says which."""


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
        import requests
        from hera.exceptions import AlreadyExists, HeraException
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
        except HeraException as exc:
            raise SubmitError(f"the Argo server at {self.settings.argo_server} refused {run_id}: "
                              f"{exc}") from exc  # fmt: skip
        except requests.exceptions.SSLError as exc:
            raise SubmitError(
                f"the Argo server at {self.settings.argo_server} has a certificate this client"
                f" does not trust ({exc}); set REQUESTS_CA_BUNDLE to its CA's file"
            ) from exc
        except requests.RequestException as exc:
            raise SubmitError(
                f"the Argo server at {self.settings.argo_server} is not reachable: {exc}"
            ) from exc
        return Submission(run_id, True, self.name)
