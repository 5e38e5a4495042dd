"""Changing the model a serve config declares, keeping the file as people wrote it.

The edit is textual — only the values of ``model_uri``, ``model_digest``, ``threshold``,
the shadow's ``shadow_uri`` and ``shadow_digest`` and the canary's ``canary_uri``,
``canary_digest`` and ``canary_fraction`` under the model's application change,
comments and layout stay — and then checked by parsing the result: exactly the intended
values must be read back, or nothing is written.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from driftloop.deployments import STORE_SCHEME, user_config

_KEY = re.compile(
    r"^(?P<indent>\s*)(?P<key>model_uri|model_digest|threshold|shadow_uri|shadow_digest"
    r"|canary_uri|canary_digest|canary_fraction):"
    r"(?P<rest>.*)$"
)


def _user_config(document: dict[str, Any], model: str) -> dict[str, Any]:
    config = user_config(document, model)
    if config is None:
        raise ValueError(f"serve config has no deployment of {model!r} with user_config.model_uri")
    return config


def declared(text: str, model: str) -> tuple[str | None, str | None]:
    """(model_uri, model_digest) that the serve config declares for ``model``."""
    import yaml

    config = _user_config(yaml.safe_load(text) or {}, model)
    return config.get("model_uri"), config.get("model_digest")


def declared_shadow(text: str, model: str) -> tuple[str | None, str | None]:
    """(shadow_uri, shadow_digest) that the serve config declares for ``model``."""
    import yaml

    config = _user_config(yaml.safe_load(text) or {}, model)
    return config.get("shadow_uri"), config.get("shadow_digest")


def declared_canary(text: str, model: str) -> tuple[str | None, str | None, float | None]:
    """(canary_uri, canary_digest, canary_fraction) that the serve config declares."""
    import yaml

    config = _user_config(yaml.safe_load(text) or {}, model)
    return config.get("canary_uri"), config.get("canary_digest"), config.get("canary_fraction")


def set_model(text: str, model: str, version: str, sha256: str) -> str:
    """``text`` with ``model``'s deployment pointing at ``version`` (threshold reset to the
    version's own: null); a shadow or a canary it declared is removed (null): the
    promotion ends it."""
    return _set(text, model, {
        "model_uri": f"{STORE_SCHEME}{model}/{version}", "model_digest": sha256,
        "threshold": None, "shadow_uri": None, "shadow_digest": None,
        "canary_uri": None, "canary_digest": None, "canary_fraction": None,
    }, required={"model_uri", "model_digest"})  # fmt: skip


def set_shadow(text: str, model: str, version: str | None, sha256: str | None) -> str:
    """``text`` with ``version`` declared as ``model``'s shadow (None, None: no shadow).
    A serve config without the shadow keys gets them after ``model_digest``."""
    if "shadow_uri" not in text:
        text = _add_keys(text, ("shadow_uri", "shadow_digest"))
    uri = f"{STORE_SCHEME}{model}/{version}" if version else None
    values = {"shadow_uri": uri, "shadow_digest": sha256}
    return _set(text, model, values, required={"shadow_uri", "shadow_digest"})


def set_canary(
    text: str, model: str, version: str | None, sha256: str | None, fraction: float | None
) -> str:
    """``text`` with ``version`` declared as ``model``'s canary answering ``fraction`` of
    the customers (all None: no canary). A serve config without the canary keys gets them
    after ``model_digest``."""
    if "canary_uri" not in text:
        text = _add_keys(text, ("canary_uri", "canary_digest", "canary_fraction"))
    uri = f"{STORE_SCHEME}{model}/{version}" if version else None
    values = {"canary_uri": uri, "canary_digest": sha256, "canary_fraction": fraction}
    return _set(text, model, values, required=set(values))


def _add_keys(text: str, keys: tuple[str, ...]) -> str:
    lines = text.splitlines(keepends=True)
    for i, line in enumerate(lines):
        match = _KEY.match(line.rstrip("\n"))
        if match and match.group("key") == "model_digest":
            indent = match.group("indent")
            lines[i + 1 : i + 1] = [f"{indent}{key}: null\n" for key in keys]
            return "".join(lines)
    raise ValueError("serve config lacks user_config.model_digest")


def _set(
    text: str, model: str, values: Mapping[str, str | float | None], required: set[str]
) -> str:
    """``text`` with the ``values`` of those keys (where present) and nothing else changed;
    every ``required`` key must be there, and the result must read back as ``values``."""
    import yaml

    lines = text.splitlines(keepends=True)
    seen: set[str] = set()
    for i, line in enumerate(lines):
        match = _KEY.match(line.rstrip("\n"))
        if not match or match.group("key") not in values:
            continue
        key = match.group("key")
        if key in seen:
            raise ValueError(f"{key} appears more than once; edit this serve config by hand")
        seen.add(key)
        comment = ""
        if "#" in match.group("rest"):
            comment = "  #" + match.group("rest").split("#", 1)[1].rstrip()
        wanted = values[key]
        if wanted is None:
            value = "null"
        elif isinstance(wanted, float):
            value = repr(wanted)
        else:
            value = f'"{wanted}"'
        lines[i] = f"{match.group('indent')}{key}: {value}{comment}\n"
    if required - seen:
        raise ValueError(f"serve config lacks user_config.{' or '.join(sorted(required - seen))}")
    result = "".join(lines)
    config = _user_config(yaml.safe_load(result), model)
    if any(config.get(key) != values[key] for key in seen):
        raise ValueError("the edited serve config does not read back as intended")
    return result
