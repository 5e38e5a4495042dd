"""Ray Jobs through the dashboard's REST API, with the cluster token: each workflow step
(and the driver that walks the DAG) is a Ray Job, so it and its logs show in the Ray
dashboard."""

from __future__ import annotations

from pydantic import SecretStr

from driftloop.raycluster import RayApiError, dashboard_request
from driftloop.settings import Settings

RUNNING = ("PENDING", "RUNNING")
"""Ray's job states that are not final (final: SUCCEEDED, FAILED, STOPPED)."""


class JobExists(Exception):
    """A Ray Job with that submission id exists already."""


def settings_environment(settings: Settings) -> dict[str, str]:
    """``DRIFTLOOP_*`` variables that make a child's ``Settings()`` equal ``settings``.

    Secrets are left out on purpose: a Ray Job's environment is shown in the dashboard;
    children read secrets from the cluster's own environment."""
    out: dict[str, str] = {}
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if value is None or isinstance(value, SecretStr):
            continue
        out[f"DRIFTLOOP_{name.upper()}"] = (
            str(value).lower() if isinstance(value, bool) else str(value)
        )
    return out


class RayJobs:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def submit(self, submission_id: str, entrypoint: str, env: dict[str, str]) -> None:
        body = {
            "entrypoint": entrypoint,
            "submission_id": submission_id,
            "runtime_env": {"env_vars": env},
            "entrypoint_num_cpus": 0,
            "metadata": {"driftloop": "workflow"},
        }
        try:
            dashboard_request(self.settings, "POST", "/api/jobs/", body, timeout_s=30)
        except RayApiError as exc:
            if self.status(submission_id) is not None:
                raise JobExists(submission_id) from exc
            raise

    def status(self, submission_id: str) -> str | None:
        """The job's state, or None if the cluster does not know it (e.g. restarted)."""
        try:
            details = dashboard_request(self.settings, "GET", f"/api/jobs/{submission_id}")
        except RayApiError as exc:
            if exc.status == 404:
                return None
            raise
        status: str = details["status"]
        return status

    def message(self, submission_id: str) -> str:
        try:
            details = dashboard_request(self.settings, "GET", f"/api/jobs/{submission_id}")
        except RayApiError:
            return ""
        return str(details.get("message") or "")

    def logs(self, submission_id: str) -> str:
        try:
            answer = dashboard_request(self.settings, "GET", f"/api/jobs/{submission_id}/logs")
        except RayApiError:
            return ""
        return str(answer.get("logs") or "")
