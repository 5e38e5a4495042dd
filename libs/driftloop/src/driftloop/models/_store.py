"""The model store: content-addressed XGBoost model versions with their lineage.

Layout under the root (a local directory or any ``pyarrow.fs`` URI)::

    <model>/index.json                       cache of the complete versions' headlines
    <model>/sha256-<16 hex>/model.json|.ubj  the model file; the id is its sha256 prefix
    <model>/sha256-<16 hex>/features.json    FeatureSpec
    <model>/sha256-<16 hex>/metadata.json    ModelMetadata (lineage)
    <model>/sha256-<16 hex>/reference/<name> reference profiles, stored as given
    <model>/sha256-<16 hex>/_COMPLETE        manifest (every file's sha256), written last

A version is visible if and only if its ``_COMPLETE`` exists. Where directories rename
atomically (the local filesystem) a version is written under a hidden ``.staging-*``
directory, completed there and renamed into place, so not even a partial directory is
ever seen; on object stores the parts go straight to the version's prefix and the marker
goes last. Either way a crash leaves nothing that readers count.
"""

from __future__ import annotations

import builtins
import logging
import uuid
from collections.abc import Mapping
from datetime import datetime

from pydantic import ValidationError

from driftloop.events import utcnow
from driftloop.models._errors import (
    DigestMismatch,
    ModelStoreError,
    VersionConflict,
    VersionNotFound,
)
from driftloop.models._format import (
    check_name,
    is_digest,
    is_version_id,
    model_format,
    sha256_hex,
    version_id,
)
from driftloop.models._fs import Location
from driftloop.models._index import (
    COMPLETE,
    Manifest,
    VersionSummary,
    add_to_index,
    complete_versions,
    read_manifest,
    write_index,
)
from driftloop.models._metadata import FeatureSpec, Lineage, ModelMetadata
from driftloop.models._version import FEATURES, METADATA, REFERENCE_DIR, ModelVersion
from driftloop.settings import Settings

log = logging.getLogger(__name__)


class ModelStore:
    """Model versions under one root. Constructing a store touches nothing."""

    def __init__(self, uri: str) -> None:
        self._location = Location(uri)

    @classmethod
    def from_settings(cls, settings: Settings) -> ModelStore:
        """The store at ``settings.model_store`` (by default ``<state_dir>/models``)."""
        return cls(settings.model_store)

    @property
    def uri(self) -> str:
        """The root, as an absolute path or a ``scheme://`` URI."""
        return self._location.uri(self._location.root)

    def __repr__(self) -> str:
        return f"ModelStore({self.uri!r})"

    # --- writing

    def put(
        self,
        model_name: str,
        model: bytes,
        *,
        filename: str,
        features: FeatureSpec,
        lineage: Lineage,
        references: Mapping[str, bytes] | None = None,
        created_at: datetime | None = None,
    ) -> ModelVersion:
        """Store a model file with its features, lineage and reference artifacts.

        ``filename`` is the name XGBoost saved the model under; its suffix (``.json`` or
        ``.ubj``) and the bytes must agree, or :class:`RefusedModel` is raised. Putting a
        model file that is already stored changes nothing and returns the stored version
        (with its original lineage)."""
        check_name(model_name)
        fmt = model_format(filename, model)
        for name in references or {}:
            check_name(name, "reference name")
        digest = sha256_hex(model)
        version = version_id(digest)
        existing = self._existing(model_name, version, digest)
        if existing is not None:
            return existing

        metadata = ModelMetadata.model_validate(
            {
                **lineage.model_dump(),
                "model_name": model_name,
                "version": version,
                "sha256": digest,
                "created_at": created_at or utcnow(),
            }
        )
        model_file = f"model.{fmt}"
        files = {
            model_file: model,
            FEATURES: features.model_dump_json(indent=2).encode(),
            METADATA: metadata.model_dump_json(indent=2).encode(),
            **{f"{REFERENCE_DIR}/{n}": data for n, data in (references or {}).items()},
        }
        manifest = Manifest(
            model_name=model_name,
            version=version,
            sha256=digest,
            created_at=metadata.created_at,
            model_file=model_file,
            files={path: sha256_hex(data) for path, data in files.items()},
        )
        final = self._location.path(model_name, version)
        if self._location.renames_directories:
            staging = self._location.path(model_name, f".staging-{version}-{uuid.uuid4().hex}")
            try:
                self._write_parts(staging, files)
                self._commit(staging, manifest)
                won = self._publish(staging, final, manifest)
            finally:
                self._location.delete_quietly(staging)
            if not won:
                return self.get(model_name, version)
        else:
            self._write_parts(final, files)
            self._commit(final, manifest)

        try:
            add_to_index(self._location, model_name, manifest.summary())
        except OSError as exc:  # the version is complete; the index is only a cache
            log.warning("could not update the index of %r: %s", model_name, exc)
        return ModelVersion(self._location, manifest, metadata)

    def reindex(self, model_name: str) -> builtins.list[VersionSummary]:
        """Rewrite ``<model>/index.json`` from the ``_COMPLETE`` markers alone."""
        check_name(model_name)
        found: builtins.list[VersionSummary] = []
        for version in self._location.directories(self._location.path(model_name)):
            if not is_version_id(version):
                continue
            manifest = read_manifest(self._location, model_name, version)
            if manifest is not None:
                found.append(manifest.summary())
        write_index(self._location, model_name, found)
        return self.list(model_name)

    def _existing(self, model_name: str, version: str, digest: str) -> ModelVersion | None:
        manifest = read_manifest(self._location, model_name, version)
        if manifest is None:
            return None
        if manifest.sha256 != digest:
            raise VersionConflict(model_name, version, manifest.sha256, digest)
        return self.get(model_name, version)

    def _write_parts(self, directory: str, files: Mapping[str, bytes]) -> None:
        for relative, data in files.items():
            self._location.write(f"{directory}/{relative}", data)

    def _commit(self, directory: str, manifest: Manifest) -> None:
        """Write the marker that makes a version visible; always the last write."""
        self._location.write(f"{directory}/{COMPLETE}", manifest.model_dump_json(indent=2).encode())

    def _publish(self, staging: str, final: str, manifest: Manifest) -> bool:
        """Rename a completed staging directory into place; False if another writer won."""
        fs = self._location.fs
        try:
            fs.move(staging, final)
            return True
        except OSError:
            if read_manifest(self._location, manifest.model_name, manifest.version):
                return False
            if not self._location.exists(final):
                raise
        # An incomplete directory in the way: never a version, so it is safe to replace.
        fs.delete_dir(final)
        fs.move(staging, final)
        return True

    # --- reading

    def models(self) -> builtins.list[str]:
        """Names of the models that have a directory in the store."""
        return self._location.directories(self._location.root)

    def list(self, model_name: str) -> builtins.list[VersionSummary]:
        """The complete versions of a model, oldest first (by ``created_at``)."""
        check_name(model_name)
        return complete_versions(self._location, model_name)

    def latest(self, model_name: str) -> ModelVersion | None:
        """The newest complete version by ``created_at``, or None if there is none."""
        versions = self.list(model_name)
        return self.get(model_name, versions[-1].version) if versions else None

    def get(self, model_name: str, version: str) -> ModelVersion:
        """A complete version by id (``sha256-<16 hex>``) or by the model file's full digest."""
        check_name(model_name)
        if is_digest(version):
            digest: str | None = version
            version = version_id(version)
        elif is_version_id(version):
            digest = None
        else:
            raise ValueError(f"{version!r} is neither a version id nor a sha256 digest")
        try:
            manifest = read_manifest(self._location, model_name, version)
        except ValidationError as exc:
            raise ModelStoreError(f"{model_name}/{version}: unreadable {COMPLETE}") from exc
        if manifest is None or (digest is not None and manifest.sha256 != digest):
            raise VersionNotFound(model_name, digest or version)
        path = self._location.path(model_name, version, METADATA)
        raw = self._location.read(path)
        expected = manifest.files.get(METADATA, "")
        if sha256_hex(raw) != expected:
            raise DigestMismatch(self._location.uri(path), expected, sha256_hex(raw))
        return ModelVersion(self._location, manifest, ModelMetadata.model_validate_json(raw))

    def verify(self, model_name: str, version: str) -> ModelVersion:
        """The version, after re-hashing every one of its files (:class:`DigestMismatch`)."""
        stored = self.get(model_name, version)
        stored.verify()
        return stored
