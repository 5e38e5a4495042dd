"""``deploy/apps/<model>/monitor.yaml``: how a model's traffic is windowed and judged.

Every section forbids unknown keys, so a misspelt threshold is an error at start-up, never
a silent default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

_STRICT = ConfigDict(extra="forbid", frozen=True)

Algorithm = Literal["ks", "chi-square", "hellinger"]
PerformanceMetric = Literal["roc_auc", "pr_auc", "recall_at_threshold"]


class WindowSpec(BaseModel):
    """When a window of one model version's predictions closes.

    ``rows`` alone: every ``rows`` predictions in arrival order. ``duration_s`` alone:
    tumbling event-time windows aligned to the epoch, closed once the newest event time
    seen is ``lateness_s`` past their end. Both: ``rows`` predictions, or fewer once the
    newest event time is ``duration_s`` (+ lateness) past the window's first row."""

    model_config = _STRICT

    rows: int | None = Field(2000, ge=1)
    duration_s: float | None = Field(None, gt=0)
    min_rows: int = Field(500, ge=1, description="smaller windows are kept, never tested")
    lateness_s: float = Field(60.0, ge=0)

    @model_validator(mode="after")
    def _some_bound(self) -> Self:
        if self.rows is None and self.duration_s is None:
            raise ValueError("set rows, duration_s or both")
        if self.rows is not None and self.min_rows > self.rows:
            raise ValueError(f"min_rows ({self.min_rows}) exceeds rows ({self.rows})")
        return self


class ColumnRule(BaseModel):
    model_config = _STRICT

    algorithm: Algorithm | None = None
    min_effect: float | None = Field(None, ge=0)


def _default_effects() -> dict[Algorithm, float]:
    return {"ks": 0.1, "chi-square": 0.05, "hellinger": 0.15}


def _default_drops() -> dict[PerformanceMetric, float]:
    return {"roc_auc": 0.05, "recall_at_threshold": 0.2}


class DriftSpec(BaseModel):
    """Which columns are tested, how, and what makes a drift event.

    A column drifts when its p-value, corrected for the number of columns tested, is
    below ``alpha`` *and* its effect (KS statistic, Hellinger distance, or for categories
    the total variation distance) reaches ``min_effect``: p-values shrink with the window
    size, so on their own they flag shifts too small to matter."""

    model_config = _STRICT

    columns: Literal["all"] | list[str] = "all"
    exclude: list[str] = Field(default_factory=list)
    score: bool = Field(True, description="test the model's score distribution as a column")
    numeric: Literal["ks", "hellinger"] = "ks"
    categorical: Literal["chi-square"] = "chi-square"
    overrides: dict[str, ColumnRule] = Field(default_factory=dict)
    correction: Literal["holm", "bonferroni", "none"] = "holm"
    alpha: float = Field(0.01, gt=0, lt=1, description="family-wise, over a window's columns")
    min_effect: dict[Algorithm, float] = Field(default_factory=_default_effects)
    min_drifted_columns: int = Field(1, ge=1)
    consecutive_windows: int = Field(1, ge=1)
    settle_hours: dict[str, float] = Field(
        default_factory=dict,
        description="column name pattern (fnmatch) -> event-time hours the column "
        "aggregates over: after the change a version was trained for, such a column keeps "
        "moving until its horizon holds only the new regime",
    )

    @model_validator(mode="after")
    def _positive_horizons(self) -> Self:
        bad = sorted(k for k, hours in self.settle_hours.items() if hours <= 0)
        if bad:
            raise ValueError(f"settle_hours must be positive: {', '.join(bad)}")
        return self

    def horizon_s(self, column: str) -> float | None:
        """Event-time seconds ``column`` aggregates over (the longest matching pattern's)."""
        from fnmatch import fnmatchcase

        hours = [h for pattern, h in self.settle_hours.items() if fnmatchcase(column, pattern)]
        return max(hours) * 3600.0 if hours else None

    def effect_for(self, column: str, algorithm: Algorithm) -> float:
        rule = self.overrides.get(column)
        if rule is not None and rule.min_effect is not None:
            return rule.min_effect
        return self.min_effect.get(algorithm, _default_effects()[algorithm])


class PerformanceSpec(BaseModel):
    """Labels joined to predictions, and when worse metrics make an event.

    Every ``step`` joined labels the last ``labels`` of a version are evaluated. A metric
    of ``max_drop`` is degraded when it is below the reference's (holdout) value by more
    than its ``max_drop`` *and* significantly so: a one-sided z-test at ``alpha``
    (corrected over the metrics tested) whose standard error combines the evaluation's and,
    when the reference records its ``positives`` and ``rows``, the holdout's (Hanley-McNeil
    for ROC-AUC, binomial for recall, the logit interval for PR-AUC), with variances
    multiplied by the metric's ``dispersion``. Labels of one fraud burst are not independent, so a
    rolling window's metrics vary more than counts alone say."""

    model_config = _STRICT

    enabled: bool = True
    labels: int = Field(2000, ge=10, description="labelled predictions per evaluation")
    step: int | None = Field(None, ge=1, description="labels between evaluations (default: labels)")
    min_positives: int = Field(10, ge=1)
    horizon_days: float = Field(35.0, gt=0, description="a label later than this is not joined")
    max_awaiting: int = Field(1_000_000, ge=1, description="predictions kept waiting for labels")
    max_drop: dict[PerformanceMetric, float] = Field(
        default_factory=_default_drops,
        description="reference (holdout) minus current, per metric",
    )
    alpha: float = Field(0.01, gt=0, lt=1, description="one-sided, over the metrics tested")
    correction: Literal["holm", "bonferroni", "none"] = "holm"
    dispersion: dict[PerformanceMetric, float] = Field(
        default_factory=dict, description="variance inflation per metric (default 1)"
    )
    min_degraded_metrics: int = Field(1, ge=1)
    consecutive_windows: int = Field(1, ge=1)

    @model_validator(mode="after")
    def _inflation_at_least_one(self) -> Self:
        low = {m: v for m, v in self.dispersion.items() if v < 1}
        if low:
            raise ValueError(f"dispersion below 1 (variances are only ever inflated): {low}")
        return self

    @property
    def every(self) -> int:
        return self.step or self.labels


def _default_differences() -> dict[PerformanceMetric, float]:
    return {"pr_auc": 0.0, "roc_auc": 0.0}


class _LiveComparison(BaseModel):
    """Two versions' labelled metrics compared with the performance check's test: each
    metric of ``min_difference`` must differ by more than its value, significantly
    (one-sided z-tests at ``alpha``, corrected over the metrics)."""

    model_config = _STRICT

    min_difference: dict[PerformanceMetric, float]
    alpha: float = Field(0.01, gt=0, lt=1, description="one-sided, corrected")
    correction: Literal["holm", "bonferroni", "none"] = "holm"

    @model_validator(mode="after")
    def _some_metric(self) -> Self:
        if not self.min_difference:
            raise ValueError("min_difference names no metric to compare")
        negative = sorted(m for m, v in self.min_difference.items() if v < 0)
        if negative:
            raise ValueError(f"min_difference must not be negative: {', '.join(negative)}")
        return self

    def test_spec(self, performance: PerformanceSpec) -> PerformanceSpec:
        """The performance test's spec for this comparison (its dispersion kept)."""
        return PerformanceSpec(
            max_drop=dict(self.min_difference), alpha=self.alpha, correction=self.correction,
            dispersion=dict(performance.dispersion), horizon_days=performance.horizon_days,
        )  # fmt: skip


class _ChallengerSpec(_LiveComparison):
    """A challenger (a shadow or a canary) judged against the serving version on live
    labels (``performance`` must be enabled: its labels are the ones joined).

    Every ``step`` new labelled rows, once each side has at least ``min_rows`` of them
    with ``min_positives`` frauds, each metric of ``min_difference`` is computed for both
    versions and compared both ways with the performance check's test
    (``compare_metrics``: one-sided z-tests at ``alpha``, corrected over the metrics, the
    performance section's ``dispersion``). The challenger is ``worse`` when a metric is
    significantly below the serving version's by more than its ``min_difference``,
    ``better`` when none is and one is significantly above by more than it, else not
    known yet.

    ``deadline_hours``: labelled event time after the challenger's first score (the
    newest label's event time counts) by which an unknown verdict is said and
    ``on_deadline`` is asked for."""

    model_config = _STRICT

    enabled: bool = True
    min_rows: int = Field(3000, ge=10, description="labelled rows of each side before any verdict")
    min_positives: int = Field(40, ge=1, description="frauds among them, on each side")
    step: int = Field(500, ge=1, description="new labelled rows between judgements")
    min_difference: dict[PerformanceMetric, float] = Field(
        default_factory=_default_differences,
        description="metrics compared, each with the difference (either way) that counts",
    )
    deadline_hours: float = Field(72.0, gt=0)
    on_deadline: Literal["keep", "remove", "promote"] = "remove"


class ShadowSpec(_ChallengerSpec):
    """A shadow version (serve.yaml's ``shadow_uri``) judged against the serving version
    on the same payments: each shadow score is paired with the serving version's score
    of the same transaction and with its label, so both sides are the paired rows
    (``min_rows`` and ``step`` count pairs). The variance of each side counts as if the
    samples were independent, which overstates the variance of a difference measured on
    the same payments: the test errs towards not known."""

    model_config = _STRICT

    pair_wait_s: float = Field(
        3600.0,
        gt=0,
        description="event-time seconds a labelled serving score waits for its shadow score",
    )


class CanarySpec(_ChallengerSpec):
    """A canary version (serve.yaml's ``canary_uri``) judged against the serving version
    on different payments: the canary on the labelled payments it answered (its
    customers', chosen by a stable hash of the customer, so the two groups are alike), the
    serving version on its own labelled payments made since the canary's first answer.
    The samples are independent, as the test assumes (as the rollback's pooled comparison
    of two versions on different payments). ``min_rows`` and ``min_positives`` hold for
    each side; ``step`` counts new labelled rows of either side."""

    model_config = _STRICT


def _default_regressions() -> dict[PerformanceMetric, float]:
    return {"pr_auc": 0.05, "roc_auc": 0.03}


class RollbackSpec(_LiveComparison):
    """A promoted version judged against the version it replaced, on live labels.

    The monitor pools each version's last ``evaluations`` labelled evaluations (the
    performance section's ``labels`` rows each). A version's first evaluation after
    another version's arms a watch with the other's pool, frozen: after each of its first
    ``evaluations`` evaluations, its own pool (all its labels so far) is compared with
    it, per metric of ``min_difference``, with
    the performance check's test (``compare_metrics``: one-sided z-tests at ``alpha``,
    corrected over the metrics, both sides' standard errors, the performance section's
    ``dispersion``). Worse on a metric by more than its ``min_difference``, significantly:
    a ``rollback`` event asks the trigger to revert the promotion. Both pools need
    ``min_rows`` rows and ``min_positives`` frauds to be compared; one that has not counts
    against ``evaluations`` all the same, so the watch ends."""

    model_config = _STRICT

    enabled: bool = True
    min_rows: int = Field(1000, ge=10, description="labelled rows of each side")
    min_positives: int = Field(20, ge=1, description="frauds among them, on each side")
    min_difference: dict[PerformanceMetric, float] = Field(
        default_factory=_default_regressions,
        description="metrics compared, each with the drop (previous - current) that counts",
    )
    evaluations: int = Field(
        3, ge=1, description="labelled evaluations after a promotion during which it is judged"
    )


class SkewSpec(BaseModel):
    """Training-serving skew: per window, a sample of the predictions' served features
    against the offline point-in-time features of the same transactions (see
    ``driftloop.drift._skew``).

    Rows are sampled by a hash of the transaction id (``sample`` / the window's ``rows``
    of them, the same rows on a replay); their transactions are read from the
    ``transactions`` topic. A closed window's sample is compared ``settle_s`` wall seconds
    later, once the stream service has written the transactions before it to the offline
    store; the window's record is then rewritten with the figures."""

    model_config = _STRICT

    enabled: bool = False
    sample: int = Field(150, ge=1, le=5000, description="rows compared per window (about)")
    tolerance: float = Field(
        1e-6, ge=0, description="relative (to max(1, |offline|)) difference that counts"
    )
    max_share: float = Field(
        0.05, ge=0, le=1, description="a feature whose rows differ more often is skewed"
    )
    settle_s: float = Field(
        20.0, ge=0, description="wall seconds between a window's close and its comparison"
    )
    exclude: list[str] = Field(default_factory=list)
    join: Literal["as-of", "feast"] = Field(
        "as-of",
        description="as-of: the sampled entities' rows read from the batch sources and joined "
        "as Feast joins them (0.2 s a window); feast: Feast's own point-in-time join, "
        "training's very path (12 s a query on the demo's file store, whatever the rows)",
    )


class MonitorPolicy(BaseModel):
    model_config = _STRICT

    model: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
    window: WindowSpec = Field(default_factory=WindowSpec)
    drift: DriftSpec = Field(default_factory=DriftSpec)
    performance: PerformanceSpec = Field(default_factory=PerformanceSpec)
    skew: SkewSpec = Field(default_factory=SkewSpec)
    shadow: ShadowSpec = Field(default_factory=ShadowSpec)
    canary: CanarySpec = Field(default_factory=CanarySpec)
    rollback: RollbackSpec = Field(default_factory=RollbackSpec)


def load_policy(path: str | Path) -> MonitorPolicy:
    """Read and validate a ``monitor.yaml``."""
    import yaml

    raw = yaml.safe_load(Path(path).read_text())
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    return MonitorPolicy.model_validate(raw)
