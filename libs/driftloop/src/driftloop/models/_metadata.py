"""What a model version records besides its bytes: lineage and the features it expects.

Every model here forbids unknown fields, so a typo in a producer is an error at write
time and a file written by a newer producer is refused rather than half-read.
"""

from __future__ import annotations

from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, FiniteFloat, JsonValue, model_validator

from driftloop.events import UtcDatetime
from driftloop.models._format import is_digest, version_id

_STRICT = ConfigDict(extra="forbid", frozen=True)


class Feature(BaseModel):
    """One model input, in the order the model expects it."""

    model_config = _STRICT

    name: str = Field(min_length=1)
    type: str = Field(min_length=1, description="e.g. float, int, categorical")


class FeatureSpec(BaseModel):
    """``features.json``: the model's inputs, in order, and any preprocessing as data."""

    model_config = _STRICT

    schema_version: Literal[1] = 1
    features: list[Feature] = Field(min_length=1)
    preprocessing: dict[str, JsonValue] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _unique_names(self) -> Self:
        names = [f.name for f in self.features]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate feature names: {', '.join(duplicates)}")
        return self

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.features]


class TrainingWindow(BaseModel):
    model_config = _STRICT

    start: UtcDatetime
    end: UtcDatetime

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.end < self.start:
            raise ValueError("training window end is before its start")
        return self


class RowCounts(BaseModel):
    model_config = _STRICT

    train: int = Field(ge=0)
    validation: int = Field(ge=0)
    holdout: int = Field(ge=0)


class GateResult(BaseModel):
    """The challenger-vs-champion verdict, when the version went through the gate."""

    model_config = _STRICT

    passed: bool
    reasons: list[str] = Field(default_factory=list, description="each check with its numbers")
    champion_version: str | None = Field(None, description="the version it was compared with")


class Lineage(BaseModel):
    """Where a model came from: everything in ``metadata.json`` the producer knows.

    The store adds what only it can know (name, version, digest, creation time) to make
    the :class:`ModelMetadata` it writes."""

    model_config = _STRICT

    git_sha: str = Field(pattern=r"^[0-9a-f]{7,64}$")
    git_dirty: bool
    feature_service: str = Field(min_length=1)
    feature_views_hash: str = Field(min_length=1)
    training_window: TrainingWindow
    rows: RowCounts
    data_hash: str = Field(min_length=1, description="hash of the training data")
    params: dict[str, JsonValue] = Field(default_factory=dict)
    metrics: dict[str, FiniteFloat] = Field(
        default_factory=dict, description="finite: JSON would turn NaN into an unreadable null"
    )
    packages: dict[str, str] = Field(
        default_factory=dict, description="e.g. python, ray, xgboost, feast versions"
    )
    seed: int
    trigger_event_id: str | None = None
    gate: GateResult | None = None
    request_schema: dict[str, JsonValue] | None = Field(
        None, description="JSON Schema of a scoring request (the serving input)"
    )
    extra: dict[str, JsonValue] = Field(default_factory=dict)


class ModelMetadata(Lineage):
    """``metadata.json`` of a stored version: its identity plus its :class:`Lineage`."""

    schema_version: Literal[1] = 1
    model_name: str = Field(min_length=1)
    version: str
    sha256: str
    created_at: UtcDatetime

    @model_validator(mode="after")
    def _version_is_digest(self) -> Self:
        if not is_digest(self.sha256):
            raise ValueError(f"sha256 {self.sha256!r} is not a sha256 hex digest")
        if self.version != version_id(self.sha256):
            raise ValueError(f"version {self.version!r} does not match sha256 {self.sha256}")
        return self

    @property
    def lineage(self) -> Lineage:
        return Lineage.model_validate(self.model_dump(include=set(Lineage.model_fields)))
