"""``deploy/apps/<model>/trigger.yaml``: when a model's drift and performance events turn
into a retraining run.

Every section forbids unknown keys, so a misspelt threshold is an error, never a silent
default. Policies are read again when their file changes (git is the source of truth);
a changed file that no longer validates is reported and the last valid policy stays.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from driftloop.spans import parse_span

_STRICT = ConfigDict(extra="forbid", frozen=True)
POLICY_FILE = "trigger.yaml"
log = logging.getLogger(__name__)


def _span(value: object) -> object:
    return parse_span(value) if isinstance(value, str) else value


def _not_negative(value: timedelta) -> timedelta:
    if value < timedelta(0):
        raise ValueError("must not be negative")
    return value


def _valid_span(value: str) -> str:
    parse_span(value)
    return value


Span = Annotated[timedelta, BeforeValidator(_span), AfterValidator(_not_negative)]
"""A duration written ``30d``, ``12h`` or ``45m`` (a number is seconds)."""


class DataDriftRule(BaseModel):
    """How severe a ``data_drift`` event must be.

    A column counts when the monitor categorised it ``DRIFT``, it is not ignored, and its
    statistic reaches ``min_statistic`` for its algorithm (statistics of different
    algorithms are not comparable: a KS statistic is at most 1, a chi-square is not)."""

    model_config = _STRICT

    enabled: bool = True
    min_drifted_columns: int = Field(1, ge=1)
    min_statistic: dict[str, float] = Field(default_factory=dict)
    ignore_columns: list[str] = Field(default_factory=list)


class PerformanceRule(BaseModel):
    """How severe a ``performance_degraded`` event must be.

    The monitor only emits one when its own thresholds are crossed; with ``min_drop``
    empty that verdict suffices. Entries name a metric and the drop (reference minus
    current, the monitor's ``drop_<metric>``) that counts; ``min_degraded_metrics`` of
    them must count."""

    model_config = _STRICT

    enabled: bool = True
    min_drop: dict[str, float] = Field(default_factory=dict)
    min_degraded_metrics: int = Field(1, ge=1)

    @model_validator(mode="after")
    def _reachable(self) -> Self:
        if self.min_drop and self.min_degraded_metrics > len(self.min_drop):
            raise ValueError(
                f"min_degraded_metrics ({self.min_degraded_metrics}) exceeds the metrics"
                f" in min_drop ({len(self.min_drop)})"
            )
        return self


class EvidenceRule(BaseModel):
    """How much labelled traffic after the change point a run needs before it starts.

    A severe event carries the monitor's counts (``DriftEvent.evidence``); one below
    either minimum is held, and a later event of the same change whose counts suffice
    starts the run. Past ``max_wait`` after the first held event the run starts anyway,
    for the latest held event. Zero minimums (the default) never hold an event."""

    model_config = _STRICT

    min_labelled_rows: int = Field(0, ge=0, description="labelled rows after the change point")
    min_positives: int = Field(0, ge=0, description="positive labels among them")
    max_wait: Span = Field(timedelta(hours=6), description="after the first held event")

    @property
    def holds(self) -> bool:
        return self.min_labelled_rows > 0 or self.min_positives > 0


class RollbackRule(BaseModel):
    """Acting on the monitor's ``rollback`` events: a ``git revert`` of the promotion of a
    version that regressed live. For ``cooldown`` after a rollback the model gets no other
    rollback, no promotion by a shadow or canary verdict and no retraining run; events of a
    version rolled back never start a run (the version it replaced serves again)."""

    model_config = _STRICT

    enabled: bool = True
    cooldown: Span = Field(timedelta(hours=6), description="after a rollback was committed")


class TriggerPolicy(BaseModel):
    """One model's trigger policy. At most one retraining run of a model is active at a
    time; that is not configurable (the workflow template's mutex says the same)."""

    model_config = _STRICT

    model: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
    enabled: bool = True
    data_drift: DataDriftRule = Field(default_factory=DataDriftRule)
    performance: PerformanceRule = Field(default_factory=PerformanceRule)
    evidence: EvidenceRule = Field(default_factory=EvidenceRule)
    rollback: RollbackRule = Field(default_factory=RollbackRule)
    cooldown: Span = Field(timedelta(hours=6), description="after a run was submitted")
    daily_budget: int = Field(3, ge=0, description="runs submitted per rolling 24 hours")
    window: Annotated[str, AfterValidator(_valid_span)] = Field(
        "7d", description="labelled history a run trains on (7d, 12h, 45m)"
    )
    window_end: Literal["event", "now"] = Field(
        "event", description="train up to the end of the event's window, or up to now"
    )


def load_policy(path: Path) -> TriggerPolicy:
    """Read and validate one ``trigger.yaml`` (its ``model`` must name its directory)."""
    import yaml

    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    policy = TriggerPolicy.model_validate(raw)
    if policy.model != path.parent.name:
        raise ValueError(f"{path}: model {policy.model!r} is not its directory's name")
    return policy


@dataclass(frozen=True)
class _Loaded:
    stamp: tuple[int, int]
    policy: TriggerPolicy


class PolicyError(ValueError):
    """A model's policy file exists but never validated."""


class Policies:
    """Every model's policy under ``root``, re-read when its file changes."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._loaded: dict[str, _Loaded] = {}
        self.errors = 0

    def load_all(self) -> dict[str, TriggerPolicy]:
        """Load every policy now; an invalid file is an error (for start-up)."""
        out = {}
        for path in sorted(self.root.glob(f"*/{POLICY_FILE}")):
            policy = load_policy(path)
            stat = path.stat()
            self._loaded[policy.model] = _Loaded((stat.st_mtime_ns, stat.st_size), policy)
            out[policy.model] = policy
        return out

    def get(self, model: str) -> TriggerPolicy | None:
        """The model's policy; None if it has no file. :class:`PolicyError` if the file
        exists but no version of it ever validated."""
        path = self.root / model / POLICY_FILE
        try:
            stat = path.stat()
        except FileNotFoundError:
            self._loaded.pop(model, None)
            return None
        stamp = (stat.st_mtime_ns, stat.st_size)
        known = self._loaded.get(model)
        if known is not None and known.stamp == stamp:
            return known.policy
        try:
            policy = load_policy(path)
        except (OSError, ValueError) as exc:
            self.errors += 1
            if known is None:
                raise PolicyError(f"{path}: {exc}") from exc
            log.error("%s is invalid, keeping the last valid policy: %s", path, exc)
            self._loaded[model] = _Loaded(stamp, known.policy)
            return known.policy
        if known is not None:
            log.info("policy of %s reloaded from %s", model, path)
        self._loaded[model] = _Loaded(stamp, policy)
        return policy
