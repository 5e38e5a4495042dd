"""Content addressing and the model file check: only XGBoost's native formats get in.

A model file is judged by its name *and* its bytes. The name must end in ``.json`` or
``.ubj``; JSON must parse to an object with a ``"learner"`` key, and UBJ must open as a
UBJSON object. Nothing here ever unpickles or loads a model: it only looks at bytes.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import PurePosixPath
from typing import Literal

from driftloop.models._errors import RefusedModel

ModelFormat = Literal["json", "ubj"]

VERSION_PREFIX = "sha256-"
VERSION_HEX_CHARS = 16
_VERSION = re.compile(rf"^{VERSION_PREFIX}[0-9a-f]{{{VERSION_HEX_CHARS}}}$")
_DIGEST = re.compile(r"^[0-9a-f]{64}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")

# After UBJSON's '{' comes a key length marker (int8, uint8, int16, int32, int64), '}' for an
# empty object, or the optimised-container markers '$' and '#'. JSON text never does.
_UBJ_AFTER_OPEN = frozenset(b"iUIlL}$#")
_PICKLE_PROTOCOL = 0x80


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def version_id(digest: str) -> str:
    """The version id of a model file with this sha256 hex digest: ``sha256-<16 hex>``."""
    if not _DIGEST.match(digest):
        raise ValueError(f"not a sha256 hex digest: {digest!r}")
    return f"{VERSION_PREFIX}{digest[:VERSION_HEX_CHARS]}"


def is_version_id(text: str) -> bool:
    return bool(_VERSION.match(text))


def is_digest(text: str) -> bool:
    return bool(_DIGEST.match(text))


def check_name(name: str, what: str = "model name") -> str:
    """A name that is safe as one path segment and never hidden (no leading '.' or '_')."""
    if not _NAME.match(name):
        raise ValueError(
            f"{what} {name!r} must be 1-128 ASCII letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def model_format(filename: str, data: bytes) -> ModelFormat:
    """The format of an XGBoost model file, or :class:`RefusedModel` if it is not one.

    ``filename`` is the name the file was saved under (``Booster.save_model("x.json")``);
    only its suffix counts."""
    suffix = PurePosixPath(filename).suffix.lower()
    if suffix not in {".json", ".ubj"}:
        raise RefusedModel(
            f"{filename!r}: only XGBoost's native formats are stored "
            "(save_model('model.json') or 'model.ubj'), never pickles or other files"
        )
    if not data:
        raise RefusedModel(f"{filename!r} is empty")
    if data[0] == _PICKLE_PROTOCOL:
        raise RefusedModel(f"{filename!r} looks like a pickle; it is never loaded")
    if suffix == ".json":
        _check_json(filename, data)
        return "json"
    _check_ubj(filename, data)
    return "ubj"


def _check_json(filename: str, data: bytes) -> None:
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RefusedModel(f"{filename!r} is not valid JSON: {exc}") from None
    if not isinstance(document, dict) or "learner" not in document:
        raise RefusedModel(f"{filename!r} is JSON but not an XGBoost model (no 'learner' key)")


def _check_ubj(filename: str, data: bytes) -> None:
    if data[0] != ord("{") or len(data) < 2 or data[1] not in _UBJ_AFTER_OPEN:
        raise RefusedModel(f"{filename!r} does not start like a UBJSON object")
    if b"learner" not in data:
        raise RefusedModel(f"{filename!r} is UBJSON but not an XGBoost model (no 'learner' key)")
