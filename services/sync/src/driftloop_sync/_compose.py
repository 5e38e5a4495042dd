"""One Serve config from every model's serve.yaml, checked before anything is applied.

Ray's REST API replaces the whole set of applications (one missing from the config is
deleted), so the configs are composed: adding a second model must not take the first one
down. A config is refused — and nothing applied — when it does not validate against
Ray's ``ServeDeploySchema``, when two files disagree on ``http_options`` or reuse an
application name or route, or when a model it names is absent from the model store or
its digest differs from the one git declares.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from driftloop.deployments import STORE_SCHEME, ServeConfigError, compose_serve_configs
from driftloop.models import ModelStore, ModelStoreError

InvalidConfig = ServeConfigError
"""The serve configs at a commit cannot be applied; the message says why."""
compose = compose_serve_configs


@dataclass(frozen=True)
class Declared:
    """A model that an application's deployment declares in its ``user_config``."""

    application: str
    route_prefix: str
    uri: str
    digest: str | None

    @property
    def name_version(self) -> tuple[str, str]:
        name, _, version = self.uri.removeprefix(STORE_SCHEME).partition("/")
        return name, version


def declared_models(composed: dict[str, Any]) -> list[Declared]:
    """Every ``models:/`` reference in the composed config."""
    found = []
    for application in composed["applications"]:
        for deployment in application.get("deployments") or []:
            config = deployment.get("user_config") or {}
            uri, digest = config.get("model_uri"), config.get("model_digest")
            if isinstance(uri, str) and uri.startswith(STORE_SCHEME):
                route = str(application.get("route_prefix") or f"/{application['name']}")
                found.append(Declared(application["name"], route, uri, digest and str(digest)))
    return found


def check_models(composed: dict[str, Any], store: ModelStore, *, rehash: bool = False) -> None:
    """Every ``models:/`` reference exists, is complete and matches its declared digest.

    With ``rehash`` every file of the version is read and hashed again (the model file
    first), so a file corrupted in the store is refused here, before anything is applied,
    rather than by the replicas' reconfigure — which keeps the old model and leaves the
    application RUNNING, indistinguishable from success in Serve's status."""
    for model in declared_models(composed):
        name, version = model.name_version
        try:
            found = store.verify(name, version) if rehash else store.get(name, version)
        except (ModelStoreError, ValueError) as exc:
            raise InvalidConfig(f"{model.application}: {model.uri}: {exc}") from None
        if model.digest is None or found.sha256 != model.digest.removeprefix("sha256:"):
            raise InvalidConfig(
                f"{model.application}: {model.uri} has sha256 {found.sha256}, "
                f"git declares {model.digest}"
            )


def differs(desired: dict[str, Any], live: dict[str, Any]) -> bool:
    """Whether the live applications differ from the desired ones in anything git sets
    (an application missing on either side counts)."""
    wanted = {a["name"]: a for a in desired["applications"]}
    if set(wanted) != set(live):
        return True
    return any(not _subset(wanted[name], live[name]) for name in wanted)


def _subset(want: Any, have: Any) -> bool:
    if isinstance(want, dict):
        if not isinstance(have, dict):
            return False
        return all(_subset(v, have.get(k)) for k, v in want.items() if v is not None or k in have)
    if isinstance(want, list):
        if not isinstance(have, list) or len(want) != len(have):
            return False
        if all(isinstance(w, dict) and "name" in w for w in want):
            by_name = {h.get("name"): h for h in have if isinstance(h, dict)}
            return all(_subset(w, by_name.get(w["name"])) for w in want)
        return all(_subset(w, h) for w, h in zip(want, have, strict=True))
    return bool(want == have)
