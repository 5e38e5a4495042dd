"""Changing the model a serve config declares, keeping the file as people wrote it.

The edit is textual — only the values of ``model_uri`` and ``model_digest`` under the
model's application change, comments and layout stay — and then checked by parsing the
result: exactly the intended values must be read back, or nothing is written.
"""

from __future__ import annotations

import re
from typing import Any

from driftloop.deployments import STORE_SCHEME, user_config

_KEY = re.compile(r"^(?P<indent>\s*)(?P<key>model_uri|model_digest|threshold):(?P<rest>.*)$")


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


def set_model(text: str, model: str, version: str, sha256: str) -> str:
    """``text`` with ``model``'s deployment pointing at ``version`` (threshold reset to the
    version's own: null)."""
    import yaml

    values = {
        "model_uri": f"{STORE_SCHEME}{model}/{version}",
        "model_digest": sha256,
        "threshold": None,
    }
    lines = text.splitlines(keepends=True)
    seen: set[str] = set()
    for i, line in enumerate(lines):
        match = _KEY.match(line.rstrip("\n"))
        if not match:
            continue
        key = match.group("key")
        if key in seen:
            raise ValueError(f"{key} appears more than once; edit this serve config by hand")
        seen.add(key)
        comment = ""
        if "#" in match.group("rest"):
            comment = "  #" + match.group("rest").split("#", 1)[1].rstrip()
        value = "null" if values[key] is None else f'"{values[key]}"'
        lines[i] = f"{match.group('indent')}{key}: {value}{comment}\n"
    if {"model_uri", "model_digest"} - seen:
        raise ValueError("serve config lacks user_config.model_uri or model_digest")
    result = "".join(lines)
    config = _user_config(yaml.safe_load(result), model)
    if config.get("model_uri") != values["model_uri"] or config.get("model_digest") != sha256:
        raise ValueError("the edited serve config does not read back as intended")
    return result
