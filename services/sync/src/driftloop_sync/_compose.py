"""One Serve config from every model's serve.yaml, checked before anything is applied.

Ray's REST API replaces the whole set of applications (one missing from the config is
deleted), so the configs are composed: adding a second model must not take the first one
down. A config is refused — and nothing applied — when it does not validate against
Ray's ``ServeDeploySchema``, when two files disagree on ``http_options`` or reuse an
application name or route, or when a model it names is absent from the model store or
its digest differs from the one git declares.
"""

from __future__ import annotations

from typing import Any

from driftloop.deployments import STORE_SCHEME, ServeConfigError, compose_serve_configs
from driftloop.models import ModelStore, ModelStoreError

InvalidConfig = ServeConfigError
"""The serve configs at a commit cannot be applied; the message says why."""
compose = compose_serve_configs


def check_models(composed: dict[str, Any], store: ModelStore) -> None:
    """Every ``models:/`` reference exists, is complete and matches its declared digest."""
    for application in composed["applications"]:
        for deployment in application.get("deployments") or []:
            config = deployment.get("user_config") or {}
            uri, digest = config.get("model_uri"), config.get("model_digest")
            if not isinstance(uri, str) or not uri.startswith(STORE_SCHEME):
                continue
            name, _, version = uri.removeprefix(STORE_SCHEME).partition("/")
            try:
                found = store.get(name, version)
            except ModelStoreError as exc:
                raise InvalidConfig(f"{application['name']}: {uri}: {exc}") from None
            if digest is None or found.sha256 != str(digest).removeprefix("sha256:"):
                raise InvalidConfig(
                    f"{application['name']}: {uri} has sha256 {found.sha256}, git declares {digest}"
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
