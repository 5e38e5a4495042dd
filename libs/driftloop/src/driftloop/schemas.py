"""JSON Schemas of the event contracts, for consumers written in other languages."""

from __future__ import annotations

import json
from pathlib import Path

from driftloop.events import CONTRACTS


def write_schemas(out_dir: Path) -> list[Path]:
    """Write ``<contract>.schema.json`` for every contract; return the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for contract in CONTRACTS:
        schema = contract.model_json_schema(mode="validation")
        schema["$id"] = f"https://driftloop.dev/schemas/{contract.__name__}.v1.json"
        schema["x-topic"] = contract.topic
        path = out_dir / f"{contract.__name__}.schema.json"
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
        written.append(path)
    return written
