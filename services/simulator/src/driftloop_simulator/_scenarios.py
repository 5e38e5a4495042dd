"""Drift scenarios: named in ``scenarios.yaml``, loaded strictly, switched on at a time.

Each scenario's numbers describe its effect at strength 1; strength scales the effect
linearly and strength 0 leaves the traffic unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from driftloop_simulator._catalog import FRAUD_PATTERNS

_CATEGORY_PATTERN = r"^[a-z0-9_]{1,64}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Segment(_Strict):
    """Rows whose ``column`` equals ``value``."""

    column: Literal["merchant_category", "country", "card_country", "channel"]
    value: str = Field(min_length=1)


class CovariateShift(_Strict):
    """Amounts in one segment are multiplied by ``amount_factor``."""

    kind: Literal["covariate_shift"]
    description: str = ""
    segment: Segment
    amount_factor: float = Field(gt=0)


class NewCategory(_Strict):
    """A share of legitimate payments — and, with ``fraud_share``, of fraud — move to a
    category and channel never seen before."""

    kind: Literal["new_category"]
    description: str = ""
    merchant_category: str = Field(pattern=_CATEGORY_PATTERN)
    channel: str = Field(pattern=r"^[a-z0-9_]{1,32}$")
    share: float = Field(gt=0, le=1)
    amount_median_eur: float = Field(gt=0)
    amount_sigma: float = Field(ge=0)
    fraud_share: float = Field(0.0, ge=0, le=1, description="share of fraud that moves too")


class ConceptDrift(_Strict):
    """A share of fraud moves to ``mimicry``: fraud that follows the victim's own habits."""

    kind: Literal["concept_drift"]
    description: str = ""
    share: float = Field(ge=0, le=1)


class LabelShift(_Strict):
    """The fraud rate is multiplied by ``fraud_rate_factor``; fraud looks as before."""

    kind: Literal["label_shift"]
    description: str = ""
    fraud_rate_factor: float = Field(gt=0)


ScenarioSpec = Annotated[
    CovariateShift | NewCategory | ConceptDrift | LabelShift, Field(discriminator="kind")
]
ScenarioName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")]


class ScenarioFile(_Strict):
    scenarios: dict[ScenarioName, ScenarioSpec]


class ScenarioError(ValueError):
    """The scenario file is malformed or does not define the requested scenario."""


def default_scenarios_path() -> Path:
    """``services/simulator/scenarios.yaml`` next to this package's source tree."""
    return Path(__file__).resolve().parents[2] / "scenarios.yaml"


def load_scenarios(path: Path | None = None) -> ScenarioFile:
    """Read and validate a scenario file; unknown keys are errors naming the key."""
    path = path or default_scenarios_path()
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ScenarioError(f"{path}: {exc}") from exc
    try:
        return ScenarioFile.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '<file>'}: {e['msg']}"
            for e in exc.errors(include_url=False)
        )
        raise ScenarioError(f"{path}: {problems}") from exc


@dataclass(frozen=True)
class ActiveScenario:
    """A scenario switched on from ``start_ns`` (ns since the epoch, UTC) at ``strength``."""

    name: str
    spec: CovariateShift | NewCategory | ConceptDrift | LabelShift
    start_ns: int
    strength: float = 1.0

    def __post_init__(self) -> None:
        if self.strength < 0:
            raise ScenarioError(f"strength must be >= 0, got {self.strength}")

    def _scaled(self, factor: float) -> float:
        return max(0.0, 1.0 + self.strength * (factor - 1.0))

    @property
    def amount_factor(self) -> float:
        return (
            self._scaled(self.spec.amount_factor) if isinstance(self.spec, CovariateShift) else 1.0
        )

    @property
    def fraud_rate_factor(self) -> float:
        if isinstance(self.spec, LabelShift):
            return self._scaled(self.spec.fraud_rate_factor)
        return 1.0

    @property
    def new_category_share(self) -> float:
        return (
            min(1.0, self.strength * self.spec.share) if isinstance(self.spec, NewCategory) else 0.0
        )

    @property
    def new_category_fraud_share(self) -> float:
        spec = self.spec
        return min(1.0, self.strength * spec.fraud_share) if isinstance(spec, NewCategory) else 0.0

    @property
    def mimicry_share(self) -> float:
        return (
            min(1.0, self.strength * self.spec.share)
            if isinstance(self.spec, ConceptDrift)
            else 0.0
        )

    def pattern_mix(self, base: dict[str, float]) -> dict[str, float]:
        """The fraud row mix once active: ``mimicry_share`` of it moves to ``mimicry``."""
        p = self.mimicry_share
        mix = {k: (1.0 - p) * base.get(k, 0.0) for k in FRAUD_PATTERNS}
        mix["mimicry"] += p
        return mix


@dataclass(frozen=True)
class ScenarioChoice:
    """A scenario picked by name, to start ``after_s`` seconds into a backfill or stream."""

    name: str
    spec: CovariateShift | NewCategory | ConceptDrift | LabelShift
    after_s: float = 0.0
    strength: float = 1.0

    def starting_at(self, origin_ns: int) -> ActiveScenario:
        return ActiveScenario(
            self.name, self.spec, origin_ns + int(self.after_s * 1e9), self.strength
        )


def choose_scenario(
    name: str, after_s: float = 0.0, strength: float = 1.0, path: Path | None = None
) -> ScenarioChoice:
    """The scenario ``name`` from the scenario file (by default the documented one)."""
    scenarios = load_scenarios(path)
    if name not in scenarios.scenarios:
        known = ", ".join(sorted(scenarios.scenarios))
        raise ScenarioError(f"unknown scenario {name!r}; known: {known}")
    if strength < 0:
        raise ScenarioError(f"strength must be >= 0, got {strength}")
    return ScenarioChoice(name, scenarios.scenarios[name], after_s, strength)
