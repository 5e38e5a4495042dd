"""The two small files that make a version visible and listing cheap.

``<model>/<version>/_COMPLETE`` is the commit record, written last: a version is visible
if and only if it exists. It holds the manifest: the sha256 of every file of the version.

``<model>/index.json`` is a cache of the manifests' headlines, so listing and ``latest``
read one file instead of one per version. It is replaced whole (temporary name, then a
move) and may be stale or missing: readers trust it only for version directories that
exist and read ``_COMPLETE`` for any directory it does not name.
"""

from __future__ import annotations

import logging
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from driftloop.events import UtcDatetime
from driftloop.models._format import is_version_id
from driftloop.models._fs import Location

log = logging.getLogger(__name__)

COMPLETE = "_COMPLETE"
INDEX = "index.json"


class VersionSummary(BaseModel):
    """One complete version as the index lists it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str
    sha256: str
    created_at: UtcDatetime
    model_file: str


class Manifest(VersionSummary):
    """The content of ``_COMPLETE``: the version's headline and every file's sha256."""

    schema_version: Literal[1] = 1
    model_name: str
    files: dict[str, str] = Field(description="path relative to the version -> sha256")

    def summary(self) -> VersionSummary:
        return VersionSummary.model_validate(
            self.model_dump(include=set(VersionSummary.model_fields))
        )


class _IndexFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1] = 1
    model_name: str
    versions: list[VersionSummary]


def _ordered(versions: list[VersionSummary]) -> list[VersionSummary]:
    return sorted(versions, key=lambda v: (v.created_at, v.version))


def read_manifest(location: Location, model_name: str, version: str) -> Manifest | None:
    """The manifest of a complete version, or None while (or if) it is incomplete."""
    raw = location.read_if_exists(location.path(model_name, version, COMPLETE))
    if raw is None:
        return None
    return Manifest.model_validate_json(raw)


def read_index(location: Location, model_name: str) -> dict[str, VersionSummary]:
    """The cached summaries by version; empty when the index is missing or unreadable."""
    raw = location.read_if_exists(location.path(model_name, INDEX))
    if raw is None:
        return {}
    try:
        index = _IndexFile.model_validate_json(raw)
    except ValidationError as exc:
        log.warning("ignoring unreadable index of model %r: %s", model_name, exc)
        return {}
    return {v.version: v for v in index.versions}


def complete_versions(location: Location, model_name: str) -> list[VersionSummary]:
    """Every complete version, oldest first: the index where it holds, ``_COMPLETE`` where not.

    Costs one directory listing and one index read, plus one small read per version
    directory the index does not name (a write in progress, a crash, a lost index update).
    """
    directories = [d for d in location.directories(location.path(model_name)) if is_version_id(d)]
    indexed = read_index(location, model_name)
    found: list[VersionSummary] = []
    for version in directories:
        if version in indexed:
            found.append(indexed[version])
            continue
        try:
            manifest = read_manifest(location, model_name, version)
        except ValidationError as exc:
            log.warning("skipping %s/%s: unreadable %s: %s", model_name, version, COMPLETE, exc)
            continue
        if manifest is not None:
            found.append(manifest.summary())
    return _ordered(found)


def write_index(location: Location, model_name: str, versions: list[VersionSummary]) -> None:
    index = _IndexFile(model_name=model_name, versions=_ordered(versions))
    location.replace(location.path(model_name, INDEX), index.model_dump_json(indent=2).encode())


def add_to_index(location: Location, model_name: str, added: VersionSummary) -> None:
    """Record a newly completed version in the index, merging in any the index missed.

    Replacing the index is not a true compare-and-swap, so a concurrent writer can undo
    this update; it is re-read and retried a few times, and readers never depend on it."""
    for _ in range(3):
        current = {v.version: v for v in complete_versions(location, model_name)}
        current[added.version] = added
        write_index(location, model_name, list(current.values()))
        if added.version in read_index(location, model_name):
            return
    log.warning("index of model %r does not list %s yet", model_name, added.version)
