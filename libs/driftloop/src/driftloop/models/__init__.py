"""The model store: content-addressed XGBoost model versions with lineage and references.

``ModelStore(uri)`` or ``ModelStore.from_settings(settings)`` opens a store on a local
directory or any ``pyarrow.fs`` URI (``file://``, ``s3://``, ...); nothing is touched until
the first read or write. Modules whose names start with ``_`` are private.
"""

from driftloop.models._encode import (
    UNKNOWN_CATEGORY,
    categorical_preprocessing,
    encode_features,
    vocabularies,
)
from driftloop.models._errors import (
    DigestMismatch,
    ModelStoreError,
    RefusedModel,
    VersionConflict,
    VersionNotFound,
)
from driftloop.models._format import ModelFormat, model_format, sha256_hex, version_id
from driftloop.models._index import VersionSummary
from driftloop.models._loaded import LoadedModel
from driftloop.models._metadata import (
    Feature,
    FeatureSpec,
    GateResult,
    Lineage,
    ModelMetadata,
    RowCounts,
    TrainingWindow,
)
from driftloop.models._store import ModelStore
from driftloop.models._version import ModelVersion

__all__ = [
    "UNKNOWN_CATEGORY",
    "DigestMismatch",
    "Feature",
    "FeatureSpec",
    "GateResult",
    "Lineage",
    "LoadedModel",
    "ModelFormat",
    "ModelMetadata",
    "ModelStore",
    "ModelStoreError",
    "ModelVersion",
    "RefusedModel",
    "RowCounts",
    "TrainingWindow",
    "VersionConflict",
    "VersionNotFound",
    "VersionSummary",
    "categorical_preprocessing",
    "encode_features",
    "model_format",
    "sha256_hex",
    "version_id",
    "vocabularies",
]
