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


def _user_config(document: dict[str, Any], model: str) -> dict[str, Any] | None:
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
    config = _user_config(document, model)
    uri = (config or {}).get("model_uri")
    if not isinstance(uri, str) or not uri:
        return None
    return uri.rstrip("/").rsplit("/", 1)[-1]
