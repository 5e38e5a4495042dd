"""The reference of a model version, read once from the model store and kept."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from driftloop.models import ModelStore, ModelStoreError, vocabularies
from driftloop.profiles import REFERENCE_FEATURES, REFERENCE_SCORES, deserialize

if TYPE_CHECKING:
    from whylogs.core import DatasetProfileView

log = logging.getLogger(__name__)
RETRY_S = 30.0


@dataclass(frozen=True)
class Reference:
    version: str
    features: DatasetProfileView
    scores: DatasetProfileView
    numeric: list[str]
    categorical: dict[str, frozenset[str]]
    metrics: dict[str, float]
    uri: str
    metadata_uri: str
    feature_service: str | None = None
    change_point: datetime | None = None
    """When the regime the version was trained for began (its lineage), if it was."""


class References:
    """Versions of one model by id; a version that cannot be read is asked again after
    ``RETRY_S`` (it may be registered after its first predictions)."""

    def __init__(self, store: ModelStore, model: str) -> None:
        self._store = store
        self._model = model
        self._found: dict[str, Reference] = {}
        self._missing: dict[str, float] = {}

    def get(self, version: str) -> Reference | None:
        if version in self._found:
            return self._found[version]
        if time.monotonic() - self._missing.get(version, -RETRY_S) < RETRY_S:
            return None
        try:
            ref = self._read(version)
        except (ModelStoreError, KeyError, ValueError, OSError) as exc:
            log.warning("no reference for %s/%s: %s", self._model, version, exc)
            self._missing[version] = time.monotonic()
            return None
        self._found[version] = ref
        return ref

    def _read(self, version: str) -> Reference:
        stored = self._store.get(self._model, version)
        spec = stored.read_features()
        vocab = vocabularies(spec)
        return Reference(
            version=version,
            features=deserialize(stored.read_reference(REFERENCE_FEATURES)),
            scores=deserialize(stored.read_reference(REFERENCE_SCORES)),
            numeric=[f.name for f in spec.features if f.type != "categorical"],
            categorical={name: frozenset(values) for name, values in vocab.items()},
            metrics=dict(stored.metadata.metrics),
            uri=stored.reference_uri(REFERENCE_FEATURES),
            metadata_uri=stored.metadata_uri,
            feature_service=stored.metadata.feature_service,
            change_point=_change_point(stored.metadata.params.get("change_point")),
        )

    def feature_service(self, version: str) -> str | None:
        """The Feast feature service ``version`` was trained on (None: unknown yet)."""
        ref = self.get(version)
        return ref.feature_service if ref is not None else None


def _change_point(value: object) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) and value else None
