"""A stored model version: its metadata, where its parts are, and reads that verify."""

from __future__ import annotations

from driftloop.deployments import STORE_SCHEME
from driftloop.models._errors import DigestMismatch, ModelStoreError
from driftloop.models._format import sha256_hex
from driftloop.models._fs import Location
from driftloop.models._index import Manifest
from driftloop.models._metadata import FeatureSpec, ModelMetadata

FEATURES = "features.json"
METADATA = "metadata.json"
REFERENCE_DIR = "reference"


class ModelVersion:
    """One complete version. Made by :class:`ModelStore`; reads go back to the store.

    Every ``read_*`` method checks the bytes against the sha256 recorded in the version's
    ``_COMPLETE`` manifest and raises :class:`DigestMismatch` when they differ."""

    def __init__(self, location: Location, manifest: Manifest, metadata: ModelMetadata) -> None:
        if (metadata.model_name, metadata.version, metadata.sha256) != (
            manifest.model_name,
            manifest.version,
            manifest.sha256,
        ):
            raise ModelStoreError(
                f"{manifest.model_name}/{manifest.version}: metadata.json and _COMPLETE disagree"
            )
        if manifest.files.get(manifest.model_file) != manifest.sha256:
            raise ModelStoreError(
                f"{manifest.model_name}/{manifest.version}: _COMPLETE does not record "
                f"{manifest.model_file} with the version's sha256"
            )
        self._location = location
        self._path = location.path(manifest.model_name, manifest.version)
        self.manifest = manifest
        self.metadata = metadata

    @property
    def name(self) -> str:
        return self.metadata.model_name

    @property
    def version(self) -> str:
        return self.metadata.version

    @property
    def sha256(self) -> str:
        """The full sha256 hex digest of the model file; the version id is its prefix."""
        return self.metadata.sha256

    @property
    def model_file(self) -> str:
        """``model.json`` or ``model.ubj``: the name XGBoost's ``load_model`` needs."""
        return self.manifest.model_file

    @property
    def uri(self) -> str:
        """The version's directory, as a path or ``scheme://`` URI."""
        return self._location.uri(self._path)

    @property
    def model_uri(self) -> str:
        return self.file_uri(self.model_file)

    @property
    def features_uri(self) -> str:
        return self.file_uri(FEATURES)

    @property
    def metadata_uri(self) -> str:
        return self.file_uri(METADATA)

    @property
    def references(self) -> list[str]:
        """Names of the reference artifacts (e.g. whylogs profiles) stored with the model."""
        prefix = f"{REFERENCE_DIR}/"
        return sorted(p.removeprefix(prefix) for p in self.manifest.files if p.startswith(prefix))

    def reference_uri(self, name: str) -> str:
        return self.file_uri(self._reference_path(name))

    def file_uri(self, relative: str) -> str:
        return self._location.uri(f"{self._path}/{relative}")

    def store_uri(self, relative: str = "") -> str:
        """``models:/<model>/<version>[/<relative>]``: a part of this version named as git
        names models, in whichever model store the reader has, never by where this process
        keeps it."""
        return f"{STORE_SCHEME}{self.name}/{self.version}" + (f"/{relative}" if relative else "")

    def in_store_scheme(self, uri: str) -> str:
        """``uri`` as ``models:/...`` when it names something in this version's store (a part
        of any version there, as the monitor's reference profiles do), else unchanged."""
        root = self._location.uri(self._location.root).rstrip("/") + "/"
        return STORE_SCHEME + uri.removeprefix(root) if uri.startswith(root) else uri

    def read_model(self) -> bytes:
        """The model file's bytes, verified; pass them to ``Booster.load_model(bytearray(...))``."""
        return self.read_file(self.model_file)

    def read_features(self) -> FeatureSpec:
        return FeatureSpec.model_validate_json(self.read_file(FEATURES))

    def read_reference(self, name: str) -> bytes:
        return self.read_file(self._reference_path(name))

    def read_file(self, relative: str) -> bytes:
        """Any file of the version by its path relative to the version, verified."""
        expected = self.manifest.files.get(relative)
        if expected is None:
            raise KeyError(f"{self.name}/{self.version} has no file {relative!r}")
        data = self._location.read(f"{self._path}/{relative}")
        actual = sha256_hex(data)
        if actual != expected:
            raise DigestMismatch(self.file_uri(relative), expected, actual)
        return data

    def verify(self) -> None:
        """Re-hash every file of the version; raise :class:`DigestMismatch` on the first bad one."""
        for relative in sorted(self.manifest.files, key=lambda p: p != self.model_file):
            self.read_file(relative)

    def _reference_path(self, name: str) -> str:
        relative = f"{REFERENCE_DIR}/{name}"
        if relative not in self.manifest.files:
            raise KeyError(f"{self.name}/{self.version} has no reference {name!r}")
        return relative

    def __repr__(self) -> str:
        return f"ModelVersion({self.name!r}, {self.version!r}, uri={self.uri!r})"
