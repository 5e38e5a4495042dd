"""What git says is deployed: the serve configs under ``deploy/apps/<model>/serve.yaml``.

Model references in a serve config's ``user_config.model_uri`` take the form
``models:/<model>/<version>`` (a version in the reader's own model store)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from driftloop.settings import Settings

STORE_SCHEME = "models:/"


def serve_config_path(settings: Settings, model: str) -> Path:
    return settings.deploy_dir / "apps" / model / "serve.yaml"


def user_config(document: dict[str, Any], model: str) -> dict[str, Any] | None:
    """The ``user_config`` of ``model``'s deployment that names a model, if any."""
    for application in document.get("applications") or []:
        if application.get("name") != model:
            continue
        for deployment in application.get("deployments") or []:
            config = deployment.get("user_config")
            if isinstance(config, dict) and "model_uri" in config:
                return config
    return None


def serving_version(settings: Settings, model: str) -> str | None:
    """The version git declares for ``model`` (its champion), or None before the first
    promotion or when the config names no model."""
    import yaml

    path = serve_config_path(settings, model)
    if not path.is_file():
        return None
    document = yaml.safe_load(path.read_text()) or {}
    config = user_config(document, model)
    uri = (config or {}).get("model_uri")
    if not isinstance(uri, str) or not uri:
        return None
    return uri.rstrip("/").rsplit("/", 1)[-1]


def promote_as(settings: Settings, model: str) -> str:
    """How a retraining run's promote step declares a version that passed the gate:
    ``serving`` (it replaces the serving one) or ``shadow`` (it is scored beside it on live
    traffic first), from ``promote_as`` in ``deploy/apps/<model>/retrain.yaml``."""
    import yaml

    path = settings.deploy_dir / "apps" / model / "retrain.yaml"
    policy = (yaml.safe_load(path.read_text()) or {}) if path.is_file() else {}
    chosen = policy.get("promote_as", "serving")
    if chosen not in ("serving", "shadow"):
        raise ValueError(f"{path}: promote_as is 'serving' or 'shadow', not {chosen!r}")
    return str(chosen)


class ServeConfigError(ValueError):
    """The serve configs of the models cannot be composed; the message says why."""


def compose_serve_configs(configs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One Serve config holding every model's applications, validated as a whole.

    Ray's REST API (which the sync service and KubeRay call) replaces the whole set of
    applications, so every model's serve.yaml is composed: each must validate against
    Ray's ``ServeDeploySchema``, all must agree on ``http_options``, and no application
    name or route may appear twice — adding a model never takes another one down."""
    from pydantic import ValidationError
    from ray.serve.schema import ServeDeploySchema

    if not configs:
        raise ServeConfigError("no deploy/apps/*/serve.yaml to compose")
    http: dict[str, Any] | None = None
    applications: list[dict[str, Any]] = []
    names: set[str] = set()
    routes: set[str] = set()
    for model, document in sorted(configs.items()):
        try:
            ServeDeploySchema.model_validate(document)
        except ValidationError as exc:
            raise ServeConfigError(f"{model}/serve.yaml: {exc}") from None
        options = document.get("http_options") or {}
        if http is None:
            http = options
        elif options != http:
            raise ServeConfigError(f"{model}/serve.yaml: http_options differ from the others'")
        for application in document.get("applications") or []:
            name, route = application.get("name"), application.get("route_prefix")
            if name in names:
                raise ServeConfigError(f"{model}/serve.yaml: application {name!r} twice")
            if route is not None and route in routes:
                raise ServeConfigError(f"{model}/serve.yaml: route {route!r} twice")
            names.add(name)
            if route is not None:
                routes.add(route)
            applications.append(application)
    composed = {"http_options": http or {}, "applications": applications}
    ServeDeploySchema.model_validate(composed)
    return composed
