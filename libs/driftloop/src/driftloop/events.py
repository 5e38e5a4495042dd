"""Event contracts: every message on a driftloop topic is one of these, as JSON.

Each event carries ``schema_version``, a stable ``event_id`` and an aware ``event_time``.
Where an event has a natural key (a transaction id, a model and window, a Kafka offset) its
id is derived from that key, so a replay or a retry produces the same id and consumers can
make their effects idempotent by ``event_id``.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal, Self, cast

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from pydantic_core import from_json

_NAMESPACE = uuid.UUID("6f1d1c2e-4c35-5b8e-9a51-8d0f3f1e2a77")


def stable_id(kind: str, *parts: object) -> str:
    """A deterministic event id (UUID v5) from an event kind and its natural key."""
    key = "\x1f".join(
        [kind, *(p.isoformat() if isinstance(p, datetime) else str(p) for p in parts)]
    )
    return str(uuid.uuid5(_NAMESPACE, key))


# Times every consumer can represent: pandas' nanosecond timestamps (features, training
# windows, monitor frames) end in 1677 and 2262.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


def _aware_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("must carry a timezone (e.g. '2026-01-01T00:00:00Z')")
    value = value.astimezone(UTC)
    if not EARLIEST <= value < LATEST:
        raise ValueError(f"must lie in [{EARLIEST:%Y-%m-%d}, {LATEST:%Y-%m-%d})")
    return value


def utcnow() -> datetime:
    return datetime.now(UTC)


UtcDatetime = Annotated[datetime, AfterValidator(_aware_utc)]
Id = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:\-]+$")]


class Event(BaseModel):
    """Fields every event shares. Unknown fields are an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    topic: ClassVar[str]
    """The logical topic this event travels on."""

    schema_version: Literal[1] = 1
    event_id: str = Field(
        default="", description="stable id; derived from the natural key when omitted"
    )
    event_time: UtcDatetime = Field(default_factory=utcnow)

    def natural_key(self) -> tuple[object, ...] | None:
        """The parts the event id derives from, or None for a random id."""
        return None

    def partition_key(self) -> str:
        """The Kafka record key: records with one key keep their order."""
        return self.event_id

    @model_validator(mode="after")
    def _derive_event_id(self) -> Self:
        key = self.natural_key()
        if key is None:
            if not self.event_id:
                object.__setattr__(self, "event_id", str(uuid.uuid4()))
            return self
        derived = stable_id(type(self).__name__, *key)
        if not self.event_id:
            object.__setattr__(self, "event_id", derived)
        elif self.event_id != derived:
            raise ValueError(
                f"event_id {self.event_id!r} does not match its natural key (expected {derived!r})"
            )
        return self

    @classmethod
    def made(cls, **fields: Any) -> Self:
        """The event of ``fields`` that this process made itself from validated values
        (serving's predictions of a scored batch), not read from outside: built without
        validation, its ``event_id`` derived from its natural key as validation derives
        it. Validating a prediction cost 15 us, more than the rest of its logging; a
        reader validates the record anyway. ``tests/unit/test_prediction_batch.py`` holds
        it equal to the validated event."""
        event = cls.model_construct(**fields)
        key = event.natural_key()
        derived = str(uuid.uuid4()) if key is None else stable_id(cls.__name__, *key)
        object.__setattr__(event, "event_id", derived)
        return cast(Self, event)

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def decode(cls, raw: bytes) -> list[Self]:
        """The events one record of this contract's topic carries (raises
        ``ValidationError`` or ``ValueError`` for a malformed one): one, unless the
        contract also travels in batches (:meth:`Prediction.decode`)."""
        return [cls.model_validate_json(raw)]


class Transaction(Event):
    """A card payment as the payment system sees it when it asks for a score."""

    topic: ClassVar[str] = "transactions"

    transaction_id: Id
    customer_id: Id
    merchant_id: Id
    amount: float = Field(gt=0, lt=1_000_000)
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    merchant_category: str = Field(pattern=r"^[a-z0-9_]{1,64}$")
    # An open vocabulary on purpose: a channel or category the model never saw is drift to
    # detect and score, not a malformed record to reject.
    channel: str = Field(pattern=r"^[a-z0-9_]{1,32}$", description="e.g. pos, online")
    country: str = Field(pattern=r"^[A-Z]{2}$", description="ISO 3166 alpha-2 of the merchant")
    card_country: str = Field(
        pattern=r"^[A-Z]{2}$", description="ISO 3166 alpha-2 of the card issuer (home country)"
    )
    device_id: Id | None = None

    def natural_key(self) -> tuple[object, ...]:
        return (self.transaction_id,)

    def partition_key(self) -> str:
        return self.customer_id


class Label(Event):
    """The truth about a transaction, known later (a chargeback or its absence)."""

    topic: ClassVar[str] = "labels"

    transaction_id: Id
    is_fraud: bool

    def natural_key(self) -> tuple[object, ...]:
        return (self.transaction_id,)

    def partition_key(self) -> str:
        return self.transaction_id


FeatureValue = float | int | str | bool | None
PredictionRole = Literal["serving", "shadow", "canary"]
"""Whose score a prediction is: see ``Prediction.role``."""


class Prediction(Event):
    """One scored transaction, as the serving endpoint logged it."""

    topic: ClassVar[str] = "predictions"

    request_id: Id
    transaction_id: Id
    model_name: Id
    model_version: Id
    score: float = Field(ge=0, le=1)
    decision: bool
    threshold: float = Field(ge=0, le=1)
    features: dict[str, FeatureValue] = Field(default_factory=dict)
    latency_ms: float = Field(ge=0)
    role: PredictionRole = Field(
        "serving",
        description="'serving': the serving version, which answered; 'shadow': a version "
        "scored on the same request beside it (serve.yaml's shadow), whose score answered "
        "nothing; 'canary': serve.yaml's canary, which answered this payment because its "
        "customer is in the canary's fraction (the payment has no serving prediction)",
    )

    def natural_key(self) -> tuple[object, ...]:
        if self.role == "shadow":
            return (self.request_id, self.transaction_id, self.role, self.model_version)
        return (self.request_id, self.transaction_id)  # the answer: serving or canary

    def partition_key(self) -> str:
        # A payment's predictions (its answer, a shadow's score, a retry's) share one
        # partition, in the order they were logged: the label join and the served
        # features keep a payment's first prediction.
        return self.transaction_id

    @classmethod
    def decode(cls, raw: bytes) -> list[Self]:
        """The predictions of one record of the ``predictions`` topic: a
        :class:`PredictionBatch` (what serving writes) or a single prediction (what it
        wrote before, and what a test or a replay may still write). A malformed batch is
        refused whole."""
        if _is_batch(raw):
            return cast(list[Self], PredictionBatch.model_validate_json(raw).predictions)
        return [cls.model_validate_json(raw)]


class PredictionBatch(Event):
    """The predictions of one scored batch that share a partition, as one record.

    Serving logs a scored batch (every role: the answers, a shadow's scores) as one record
    per partition its payments' transaction ids fall in: kafka-python spends about as
    much time on one record as on scoring a payment, so a record per prediction capped a
    replica's log, not its scoring. Each prediction is the same event as when logged
    alone (same ``event_id``), and still lands in the partition of its transaction id.
    Schema version 2, so that a reader of single predictions refuses a batch by its
    version rather than misreading it; readers take both (``Prediction.decode``)."""

    topic: ClassVar[str] = "predictions"

    schema_version: Literal[2] = 2  # type: ignore[assignment]
    predictions: list[Prediction] = Field(min_length=1)

    @classmethod
    def of(cls, predictions: list[Prediction]) -> Self:
        """A batch of ``predictions`` (at least one), stamped with the newest event time.
        They are valid already: not validated again (pydantic would run each one's
        validators anew, 6 us a prediction, as much as the rest of its logging)."""
        if not predictions:
            raise ValueError("a batch holds at least one prediction")
        key = tuple(p.event_id for p in predictions)
        batch = cls.model_construct(
            predictions=list(predictions),
            event_id=stable_id(cls.__name__, *key),
            event_time=max(p.event_time for p in predictions),
        )
        return cast(Self, batch)

    def natural_key(self) -> tuple[object, ...]:
        return tuple(p.event_id for p in self.predictions)

    def partition_key(self) -> str:
        """The first prediction's: a batch holds predictions of one partition."""
        return self.predictions[0].partition_key()

    @classmethod
    def decode(cls, raw: bytes) -> list[Self]:
        """A record of the topic as a batch: a single prediction's as a batch of one."""
        if _is_batch(raw):
            return [cls.model_validate_json(raw)]
        return [cls.of([Prediction.model_validate_json(raw)])]


def _is_batch(raw: bytes) -> bool:
    """Whether a record of the ``predictions`` topic is a batch: a JSON object with a
    ``predictions`` field (a single prediction has none). Not JSON: no, and the single
    prediction's validation says why, as for any other contract."""
    try:
        data = from_json(raw)
    except ValueError:
        return False
    return isinstance(data, dict) and "predictions" in data


class Window(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    start: UtcDatetime
    end: UtcDatetime
    row_count: int = Field(ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.end < self.start:
            raise ValueError("window end is before its start")
        return self


class ColumnDrift(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    column: str = Field(min_length=1)
    algorithm: str = Field(min_length=1, description="e.g. ks, chi-square, hellinger")
    statistic: float
    p_value: float | None = Field(default=None, ge=0, le=1)
    category: Literal["NO_DRIFT", "POSSIBLE_DRIFT", "DRIFT"]


class Evidence(BaseModel):
    """Labelled traffic the monitor had joined after the change point when it published:
    what a retraining run could learn the new regime from, and be judged on."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    since: UtcDatetime = Field(description="the change point the counts start at")
    labelled_rows: int = Field(ge=0)
    positives: int = Field(ge=0)


class _Compared(BaseModel):
    """One metric of a challenger (a shadow or a canary) and of the serving version on
    labelled payments, compared both ways."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    metric: str = Field(min_length=1, description="e.g. pr_auc, roc_auc, recall_at_threshold")
    serving: float
    standard_error: float = Field(ge=0, description="of the difference challenger - serving")
    p_better: float = Field(ge=0, le=1, description="one-sided (challenger above), corrected")
    p_worse: float = Field(ge=0, le=1, description="one-sided (challenger below), corrected")


class MetricComparison(_Compared):
    """One metric of a shadow and of the serving version on the same labelled payments."""

    shadow: float

    @property
    def challenger(self) -> float:
        return self.shadow


class CanaryComparison(_Compared):
    """One metric of a canary on its customers' labelled payments and of the serving
    version on the others' of the same period."""

    canary: float

    @property
    def challenger(self) -> float:
        return self.canary


ShadowOutcome = Literal["better", "worse", "unknown"]
ShadowAction = Literal["promote", "remove", "keep"]


class _LiveVerdict(BaseModel):
    """What a shadow's and a canary's live judgements share: ``better`` asks for the
    challenger's promotion, ``worse`` for its removal, ``unknown`` (said once, when the
    policy's deadline passed without a verdict) for the policy's choice."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Id = Field(description="the challenger version judged")
    verdict: ShadowOutcome
    action: ShadowAction
    rows: int = Field(ge=0, description="the challenger's labelled payments judged on")
    positives: int = Field(ge=0)
    serving_metrics: dict[str, float] = Field(default_factory=dict)
    first_seen: UtcDatetime = Field(description="event time of the challenger's first score")
    deadline: UtcDatetime = Field(description="when an unknown verdict is acted on by policy")
    reason: str = ""

    @model_validator(mode="after")
    def _action_follows_verdict(self) -> Self:
        expected = {"better": "promote", "worse": "remove"}.get(self.verdict)
        if expected is not None and self.action != expected:
            role = type(self).__name__.removesuffix("Verdict").lower()
            raise ValueError(f"a {role} judged {self.verdict} is to {expected}, not {self.action}")
        return self


class ShadowVerdict(_LiveVerdict):
    """The live judgement of a shadow version (serve.yaml's ``shadow_uri``) against the
    serving version, on the payments both scored and whose labels arrived (``rows`` and
    ``positives`` are those paired payments')."""

    shadow_metrics: dict[str, float] = Field(default_factory=dict)
    comparisons: list[MetricComparison] = Field(default_factory=list)

    @property
    def challenger_metrics(self) -> dict[str, float]:
        return self.shadow_metrics


class CanaryVerdict(_LiveVerdict):
    """The live judgement of a canary version (serve.yaml's ``canary_uri``) against the
    serving version: the canary on the labelled payments it answered (its customers',
    by the stable hash), the serving version on the other customers' labelled payments
    since the canary's first answer. The samples are different payments, so each side
    is counted on its own."""

    serving_rows: int = Field(ge=0, description="the serving version's labelled payments")
    serving_positives: int = Field(ge=0)
    canary_metrics: dict[str, float] = Field(default_factory=dict)
    comparisons: list[CanaryComparison] = Field(default_factory=list)

    @property
    def challenger_metrics(self) -> dict[str, float]:
        return self.canary_metrics


class MetricRegression(BaseModel):
    """One metric of a newly promoted version against the previous version's last live
    figures."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    metric: str = Field(min_length=1, description="e.g. pr_auc, roc_auc")
    previous: float
    current: float
    standard_error: float = Field(ge=0, description="of the difference current - previous")
    p_worse: float = Field(ge=0, le=1, description="one-sided (current below), corrected")
    min_difference: float = Field(ge=0)


class Regression(BaseModel):
    """A promoted version judged significantly worse on its labelled traffic than the
    version it replaced was on its own last evaluation before: the evidence of a
    rollback (``git revert`` of the promotion)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    previous_version: Id = Field(
        description="the version that served before; a rollback returns to it"
    )
    evaluation: int = Field(ge=1, description="the new version's labelled evaluations so far")
    rows: int = Field(ge=0, description="labelled payments of this evaluation")
    positives: int = Field(ge=0)
    previous_rows: int = Field(ge=0, description="of the previous version's last evaluation")
    previous_positives: int = Field(ge=0)
    previous_window: Window = Field(description="event times of the previous figures' payments")
    metrics: dict[str, float] = Field(default_factory=dict)
    previous_metrics: dict[str, float] = Field(default_factory=dict)
    comparisons: list[MetricRegression] = Field(default_factory=list)
    reason: str = ""


_KIND_VERSION = {"shadow_verdict": 3, "rollback": 4, "canary_verdict": 5}
"""Kinds written with a schema version of their own, so an older reader refuses them."""


class DriftEvent(Event):
    """A window of a model's traffic judged different from its reference (or worse), a
    shadow or canary version judged against the serving one on live labels, or a promoted
    version that regressed live.

    Schema version 2 adds ``change_point`` and ``evidence`` (both optional): version-1
    records still validate, and a version-1 reader that ignores unknown fields sees the
    same event. The id still derives from the model and window alone, so a replay of an
    event whose evidence grew meanwhile is the same event.

    Schema version 3 adds the kind ``shadow_verdict`` and its ``shadow`` field; only a
    shadow verdict is written as version 3 (data and performance events stay version 2),
    so a version-2 reader refuses it by its version rather than misreading it. Its
    ``model_version`` is the serving version, its window the paired payments' event
    times, and its id derives from the model, both versions and the verdict: a replay,
    or a later evaluation reaching the same verdict, is the same event.

    Schema version 4 adds the kind ``rollback`` and its ``regression`` field (only a
    rollback is written as version 4): ``model_version`` is the promoted version that
    regressed, the window its evaluation's payments, and the id derives from the model
    and both versions, so a replay, or a later evaluation of the same regression, is the
    same event.

    Schema version 5 adds the kind ``canary_verdict`` and its ``canary`` field (only a
    canary verdict is written as version 5): as a shadow verdict, with the canary in place
    of the shadow, its window the canary's labelled payments, and its id from the model,
    both versions and the verdict."""

    topic: ClassVar[str] = "drift-events"

    schema_version: Literal[1, 2, 3, 4, 5] = 2  # type: ignore[assignment]
    kind: Literal[
        "data_drift", "performance_degraded", "shadow_verdict", "rollback", "canary_verdict"
    ] = "data_drift"
    model_name: Id
    model_version: Id
    window: Window
    reference_profile: str = Field(min_length=1, description="URI of the reference profile")
    columns: list[ColumnDrift] = Field(default_factory=list)
    metrics: dict[str, float] = Field(default_factory=dict)
    change_point: UtcDatetime | None = Field(
        None, description="the monitor's estimate of when the change began (event time)"
    )
    evidence: Evidence | None = Field(
        None, description="labelled rows and positives joined after the change point"
    )
    shadow: ShadowVerdict | None = Field(
        None, description="kind shadow_verdict: the shadow's live judgement and its evidence"
    )

    regression: Regression | None = Field(
        None, description="kind rollback: the promoted version's live regression"
    )
    canary: CanaryVerdict | None = Field(
        None, description="kind canary_verdict: the canary's live judgement and its evidence"
    )

    @model_validator(mode="before")
    @classmethod
    def _kind_version(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("kind") in _KIND_VERSION:
            data = {"schema_version": _KIND_VERSION[data["kind"]], **data}
        return data

    @model_validator(mode="after")
    def _shadow_consistent(self) -> Self:
        verdict = self.kind == "shadow_verdict"
        if verdict != (self.shadow is not None):
            raise ValueError("kind shadow_verdict, and only it, carries a shadow verdict")
        if (self.kind == "rollback") != (self.regression is not None):
            raise ValueError("kind rollback, and only it, carries a regression")
        if (self.kind == "canary_verdict") != (self.canary is not None):
            raise ValueError("kind canary_verdict, and only it, carries a canary verdict")
        expected = _KIND_VERSION.get(self.kind)
        if expected is not None and self.schema_version != expected:
            raise ValueError(f"kind {self.kind} is schema_version {expected}")
        if expected is None and self.schema_version in _KIND_VERSION.values():
            raise ValueError(f"schema_version {self.schema_version} is not that of {self.kind}")
        return self

    @property
    def live_verdict(self) -> ShadowVerdict | CanaryVerdict | None:
        """A shadow's or a canary's live verdict, whichever this event carries."""
        return self.shadow if self.shadow is not None else self.canary

    def natural_key(self) -> tuple[object, ...]:
        live = self.live_verdict
        if live is not None:
            return (self.kind, self.model_name, self.model_version, live.version, live.verdict)
        if self.kind == "rollback" and self.regression is not None:
            return (self.kind, self.model_name, self.model_version,
                    self.regression.previous_version)  # fmt: skip
        return (self.kind, self.model_name, self.model_version, self.window.start, self.window.end)

    def partition_key(self) -> str:
        return self.model_name


class WorkflowEvent(Event):
    """A change of state of a workflow run or one of its steps."""

    topic: ClassVar[str] = "workflow-events"

    run_id: Id
    workflow: Id
    model_name: Id
    step: Id | None = None
    phase: Literal["waiting", "submitted", "running", "succeeded", "failed", "skipped", "promoted"]
    """``waiting``: the trigger holds a severe event until enough labelled traffic after
    the change point exists (the message gives the counts)."""
    trigger_event_id: str | None = None
    message: str = ""

    def natural_key(self) -> tuple[object, ...]:
        return (self.run_id, self.step or "", self.phase)

    def partition_key(self) -> str:
        return self.model_name


class DeadLetter(Event):
    """A record a consumer could not accept, kept with its original bytes and the reason."""

    topic: ClassVar[str] = "dlq"

    source_topic: str
    partition: int = Field(ge=0)
    offset: int = Field(ge=0)
    consumer_group: str
    reason: str
    errors: list[dict[str, Any]] = Field(default_factory=list)
    key_b64: str | None = None
    value_b64: str

    def natural_key(self) -> tuple[object, ...]:
        return (self.source_topic, self.partition, self.offset, self.consumer_group)

    def partition_key(self) -> str:
        return self.source_topic


CONTRACTS: tuple[type[Event], ...] = (
    Transaction,
    Label,
    Prediction,
    PredictionBatch,
    DriftEvent,
    WorkflowEvent,
    DeadLetter,
)
