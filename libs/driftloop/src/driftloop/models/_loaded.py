"""A stored version loaded for scoring: the booster, its inputs and its threshold.

Serving, batch scoring and the monitor's tests all score through :class:`LoadedModel`,
so a version is read, verified and encoded the same way everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from driftloop.models._encode import encode_features
from driftloop.models._errors import DigestMismatch
from driftloop.models._format import model_format, sha256_hex
from driftloop.models._metadata import FeatureSpec, ModelMetadata
from driftloop.models._version import ModelVersion

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd


@dataclass(frozen=True)
class LoadedModel:
    """An XGBoost booster in memory with what it was stored with.

    ``threshold``: the decision threshold chosen at training (the lowest score reaching
    the spec's target precision), or ``None`` if no threshold reached it."""

    name: str
    version: str
    sha256: str
    features: FeatureSpec
    metadata: ModelMetadata
    booster: Any  # xgboost.Booster; Any keeps xgboost out of this module's imports

    @property
    def threshold(self) -> float | None:
        return self.metadata.metrics.get("threshold")

    @classmethod
    def load(
        cls, version: ModelVersion, expected_sha256: str | None = None, nthread: int = 1
    ) -> LoadedModel:
        """Read, verify and load ``version``.

        ``expected_sha256`` (the digest git declares) must match the stored file's, or
        :class:`DigestMismatch` is raised before XGBoost parses a byte. The file must be
        XGBoost's JSON or UBJ (a pickle is :class:`RefusedModel`, never unpickled)."""
        import xgboost

        data = version.read_model()  # raises DigestMismatch when the bytes changed
        actual = sha256_hex(data)
        if expected_sha256 is not None and actual != expected_sha256.removeprefix("sha256:"):
            raise DigestMismatch(version.model_uri, expected_sha256, actual)
        model_format(version.model_file, data)
        booster = xgboost.Booster(params={"nthread": nthread}, model_file=bytearray(data))
        return cls(
            name=version.name,
            version=version.version,
            sha256=actual,
            features=version.read_features(),
            metadata=version.metadata,
            booster=booster,
        )

    def encode(self, frame: pd.DataFrame) -> pd.DataFrame:
        return encode_features(frame, self.features)

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Scores (P(fraud)) for raw feature rows: the model's features by name, categories
        as strings, numbers as numbers; null is missing."""
        import xgboost

        encoded = self.encode(frame)
        matrix = xgboost.DMatrix(encoded, feature_names=self.features.names, nthread=1)
        scores: np.ndarray = self.booster.predict(matrix)
        return scores
