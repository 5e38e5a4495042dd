"""Every object against the vendored upstream schemas, unknown fields as errors.

``deploy/k8s/schemas/<operator>/<version>/schemas.json`` holds the CRD schemas of the oldest
supported and the newest released version of each operator (see ``vendor.py``);
``deploy/k8s/schemas/kubernetes/<version>/definitions.json`` Kubernetes' own. An object is
checked against every vendored version of the operator that owns its kind, and refused by
the rules the API server applies when it stores it:

- a CRD object field that its structural schema does not list is *pruned*, silently: an
  object schema without ``x-kubernetes-preserve-unknown-fields: true`` or
  ``additionalProperties`` is closed here (with or without ``properties``);
- a built-in kind's unknown field is refused (strict field validation);
- ``metadata`` at the root and in ``x-kubernetes-embedded-resource`` objects is an
  ObjectMeta; ``x-kubernetes-int-or-string`` takes either; ``nullable`` takes null;
- ``x-kubernetes-validations`` (CEL) rules are not evaluated.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

SCHEMAS = Path("deploy/k8s/schemas")
OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
_QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
_META_REF = {"$ref": f"#/definitions/{OBJECT_META}"}
_BRANCHES = ("anyOf", "allOf", "oneOf", "not")

Schema = dict[str, Any]


@dataclass(frozen=True)
class Finding:
    """One refusal: which object, where in it, by which schema version, and why."""

    where: str
    kind: str
    api_version: str
    name: str
    path: str
    schema: str
    message: str

    def __str__(self) -> str:
        return (
            f"{self.where}: {self.kind} {self.name} ({self.api_version}) at {self.path}: "
            f"{self.message} [{self.schema}]"
        )


@dataclass(frozen=True)
class SchemaSet:
    """One vendored version of one operator (or of Kubernetes): its kinds' schemas."""

    operator: str
    version: str
    kinds: dict[tuple[str, str], Schema]
    """(apiVersion, kind) → the schema as vendored."""

    @property
    def label(self) -> str:
        return f"{self.operator} {self.version}"


@dataclass
class Schemas:
    """Every vendored schema set; validators are built on first use."""

    sets: list[SchemaSet]
    definitions: dict[str, Schema]
    """Kubernetes' definitions (ObjectMeta and the built-in kinds), as vendored."""
    _validators: dict[tuple[str, str, str], Any] = field(default_factory=dict)

    @classmethod
    def load(cls, root: Path) -> Schemas:
        directory = root / SCHEMAS
        sets: list[SchemaSet] = []
        definitions: dict[str, Schema] = {}
        for path in sorted(directory.glob("kubernetes/*/definitions.json")):
            if definitions:
                raise ValueError(f"{directory}/kubernetes: vendor one Kubernetes version only")
            definitions = json.loads(path.read_text())["definitions"]
            kinds = {
                (f"{g['group']}/{g['version']}".lstrip("/"), g["kind"]): {
                    "$ref": f"#/definitions/{name}"
                }
                for name, d in definitions.items()
                for g in d.get("x-kubernetes-group-version-kind", [])
            }
            sets.append(SchemaSet("kubernetes", path.parent.name, kinds))
        if not definitions:
            raise ValueError(f"no Kubernetes definitions under {directory}/kubernetes")
        for path in sorted(directory.glob("*/*/schemas.json")):
            body: dict[str, dict[str, Schema]] = json.loads(path.read_text())
            kinds = {(v, k): s for v, by_kind in body.items() for k, s in by_kind.items()}
            sets.append(SchemaSet(path.parent.parent.name, path.parent.name, kinds))
        return cls(sets, definitions)

    @cached_property
    def _core(self) -> dict[str, Schema]:
        return {name: _close_core(name, d) for name, d in self.definitions.items()}

    def versions(self, operator: str) -> list[str]:
        return [s.version for s in self.sets if s.operator == operator]

    def owners(self, api_version: str, kind: str) -> list[SchemaSet]:
        """Every vendored version of the operator(s) that define this kind in this group."""
        group = api_version.rpartition("/")[0]
        operators = {
            s.operator
            for s in self.sets
            for v, k in s.kinds
            if k == kind and v.rpartition("/")[0] == group
        }
        return [s for s in self.sets if s.operator in operators]

    def validate(self, doc: Any, where: str) -> list[Finding]:
        """What every vendored version of the owning operator refuses in ``doc``."""
        if not isinstance(doc, dict):
            return [Finding(where, "?", "?", "?", "$", "-", "not an object")]
        api_version, kind = str(doc.get("apiVersion", "")), str(doc.get("kind", ""))
        name = str((doc.get("metadata") or {}).get("name", "?"))

        def finding(path: str, schema: str, message: str) -> Finding:
            return Finding(where, kind, api_version, name, path, schema, message)

        owners = self.owners(api_version, kind)
        if not owners:
            return [finding("$", "-", "no vendored schema for this kind (deploy/k8s/schemas)")]
        found: list[Finding] = []
        for owner in owners:
            if (api_version, kind) not in owner.kinds:
                served = sorted(v for v, k in owner.kinds if k == kind)
                message = f"apiVersion not served (serves {', '.join(served) or 'none'})"
                found.append(finding(".apiVersion", owner.label, message))
                continue
            instance = _without_nulls(doc) if owner.operator == "kubernetes" else doc
            for error in self._validator(owner, api_version, kind).iter_errors(instance):
                for path, message in _explain(error):
                    found.append(finding(path, owner.label, message))
        return found

    def _validator(self, owner: SchemaSet, api_version: str, kind: str) -> Any:
        import jsonschema  # type: ignore[import-untyped]

        key = (owner.label, api_version, kind)
        if key not in self._validators:
            raw = owner.kinds[(api_version, kind)]
            schema = raw if owner.operator == "kubernetes" else _close_crd(raw, root=True)
            schema = {**schema, "definitions": self._core}
            self._validators[key] = jsonschema.Draft4Validator(schema)
        return self._validators[key]


def _close_crd(node: Schema, root: bool = False) -> Schema:
    """A CRD structural schema as the API server prunes it: closed unless it says not."""
    out = dict(node)
    if "properties" in out:
        out["properties"] = {k: _close_crd(v) for k, v in out["properties"].items()}
    if isinstance(out.get("items"), dict):
        out["items"] = _close_crd(out["items"])
    if isinstance(out.get("additionalProperties"), dict):
        out["additionalProperties"] = _close_crd(out["additionalProperties"])
    if out.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    if root or out.get("x-kubernetes-embedded-resource"):
        properties = out.setdefault("properties", {})
        properties.setdefault("apiVersion", {"type": "string"})
        properties.setdefault("kind", {"type": "string"})
        own = dict(node.get("properties", {}).get("metadata", {}))
        own.pop("type", None)
        properties["metadata"] = {"allOf": [_META_REF, own]} if own else _META_REF
    preserve = out.get("x-kubernetes-preserve-unknown-fields") is True
    if out.get("type") == "object" and not preserve and "additionalProperties" not in out:
        out["additionalProperties"] = False
    if out.get("nullable") is True:
        if isinstance(out.get("type"), str):
            out["type"] = [out["type"], "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
        if "anyOf" in out:
            out["anyOf"] = [*out["anyOf"], {"type": "null"}]
    return out


def _close_core(name: str, node: Schema) -> Schema:
    """A built-in definition as strict decoding reads it: unknown fields refused."""
    if name == _QUANTITY:
        return {"type": ["string", "number"]}
    return _close_core_node(node)


def _close_core_node(node: Schema) -> Schema:
    out = dict(node)
    if "properties" in out:
        out["properties"] = {k: _close_core_node(v) for k, v in out["properties"].items()}
        out.setdefault("additionalProperties", False)
    if isinstance(out.get("items"), dict):
        out["items"] = _close_core_node(out["items"])
    if isinstance(out.get("additionalProperties"), dict):
        out["additionalProperties"] = _close_core_node(out["additionalProperties"])
    if out.get("format") == "int-or-string":
        out["type"] = ["integer", "string"]
    for key in _BRANCHES:
        out.pop(key, None)  # the swagger's few are documentation of unions, not rules
    return out


def _without_nulls(value: Any) -> Any:
    """A built-in kind's null fields are absent fields (Go decoding)."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def json_path(parts: Any) -> str:
    """``$.spec.templates[0]["a.b"]`` from jsonschema's path deque."""
    out = "$"
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.replace("-", "").replace("_", "").isalnum():
            out += f".{part}"
        else:
            out += f"[{json.dumps(part)}]"
    return out


def _explain(error: Any) -> list[tuple[str, str]]:
    """(JSON path, message) of one jsonschema error; an unknown field is named by its path."""
    path = list(error.absolute_path)
    if error.validator == "additionalProperties" and error.validator_value is False:
        known = set(error.schema.get("properties", {}))
        extra = sorted(k for k in error.instance if k not in known)
        return [(json_path([*path, k]), "unknown field") for k in extra]
    if error.validator in ("anyOf", "oneOf") and error.context:
        reasons = sorted({c.message for c in error.context})
        return [(json_path(path), f"{error.message} ({'; '.join(reasons)})")]
    return [(json_path(path), error.message)]
