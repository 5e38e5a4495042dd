"""The HTTP contract: what the scoring routes take and answer (also the OpenAPI schema).

A scoring request is a :class:`driftloop.events.Transaction`, read as pydantic's strict
JSON mode reads it: an unknown, missing or mistyped field (``true`` or ``"42.5"`` for a
number, ``17`` for a string) is a 422 whose ``loc`` names it. The contract itself stays
lax for the services that read it from Kafka; only the HTTP bodies are strict, and the
OpenAPI schema states each rule they add (so a schema-based fuzzer's valid requests are
valid here, and its invalid ones are refused).
"""

from __future__ import annotations

import re
import time
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Self

from fastapi.exceptions import RequestValidationError
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    TypeAdapter,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, InitErrorDetails, PydanticCustomError

from driftloop.events import EARLIEST, LATEST, Transaction
from driftloop_serving._config import STORE_SCHEME
from driftloop_serving._errors import public
from driftloop_serving._scoring import ActiveModel, Scored
from driftloop_serving._slot import Canary, Refusal

if TYPE_CHECKING:
    from driftloop_serving._service import Outcome

# event_time over HTTP: an RFC 3339 date-time (section 5.6, upper-case T and Z, seconds
# 00-59) whose year keeps it inside the contract's [EARLIEST, LATEST) UTC whatever its
# offset (at most 23:59): one year in from each end. Exact, so the schema can state it.
EVENT_TIME = re.compile(
    r"(197[1-9]|19[89][0-9]|20[0-9]{2}|21[0-8][0-9]|219[0-8])"
    r"-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    r"T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]+)?"
    r"(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])"
)
EVENT_TIME_FORM = "an RFC 3339 date-time with an offset (Z or ±hh:mm) and a year from 1971 to 2198"
EVENT_TIME_RULE = (
    f"{EVENT_TIME_FORM}. The contract keeps every event time in [{EARLIEST:%Y-%m-%d}, "
    f"{LATEST:%Y-%m-%d}) UTC; no offset moves such a time out of it. Omitted: the time the "
    "request arrives."
)
EVENT_ID_RULE = (
    'omit it or send "": it is derived from transaction_id (the id derived, as events '
    "carry it, is accepted too; any other value is a 422 naming event_id)"
)

DESCRIPTION = f"""Scores card transactions for fraud with the model named in the deployment's
configuration, from online features (Feast) and the transaction itself.

* A transaction with an unknown, missing or mistyped field is a **422** naming the field
  (JSON types are strict: `true` or `"42.5"` is not a number, `17` is not a string), as
  is an `event_id` that is not the transaction's (omit it: it is derived), an
  `event_time` that is not {EVENT_TIME_FORM}, a batch with more
  transactions than the deployment takes (`maxItems`) or with a transaction id twice.
* An unknown customer or merchant is scored, never refused: features the store does not
  have are missing values for the model (new customer: `amount_to_mean_7d` = 1,
  `seconds_since_last_txn` = 30 days, as in training) and the answer flags it
  (`unknown_customer`, `unknown_merchant`).
* `decision` is `score >= threshold`.
* **503** while no model is loaded (see `/healthz`), or when the feature store fails.
* `/predict`, `/predict/batch` and `/model` need the deployment's API key in the
  `X-API-Key` header (**401** otherwise), unless its auth is switched off; `/healthz` and
  `/metrics` stay open.

A body is JSON or it is refused before anything else (the API key included):

* **415** when `Content-Type` is not `application/json` (parameters such as `charset` are
  ignored), or bytes come without one;
* **400** when the bytes are not JSON text (RFC 8259): not UTF-8, a syntax error, `NaN`
  or `Infinity`, more than 200 levels of nesting, an integer of more than 4300 digits;
* no body at all, or an empty one, is a **422** naming `body`.

Every answer that is not a 2xx is `{{"detail": ...}}`: a sentence, or for a 422 a list of
the invalid parts (`loc`, `type`, `msg`, `input`). Unknown query parameters and headers are
ignored. No answer carries a path of the server: models are named `models:/<name>/<version>`
(in the replica's model store).
"""


def _strict_transaction(value: Any, _lax: ValidatorFunctionWrapHandler) -> Transaction:
    """``value`` (FastAPI's parse of the body) validated as strict JSON.

    The parsed JSON is validated in strict Python mode, which takes what strict JSON mode
    takes from the same text (JSON's types are Python's here) but for a date-time, which
    only JSON mode reads from a string: ``event_time`` is read first, as JSON mode reads
    it (writing the body back to JSON for JSON mode cost a third of a batch's
    validation). ``tests/unit/test_serving_api.py`` compares the two modes' answers on
    every rule. The ``event_id`` is checked apart from the rest: the contract refuses a
    mismatch for the whole object, the answer names the field.
    """
    if isinstance(value, Transaction):
        return value
    if not isinstance(value, dict):
        return Transaction.model_validate(value, strict=True)  # the model's type error
    sent = value
    when = value.get("event_time")
    if isinstance(when, str):
        if not EVENT_TIME.fullmatch(when):
            raise _invalid("event_time", _EVENT_TIME_FORMAT, when)
        value = {**value, "event_time": _event_time(when)}
    claimed = value.get("event_id")
    rest = {k: v for k, v in value.items() if k != "event_id"} if "event_id" in value else value
    try:
        txn = Transaction.model_validate(rest, strict=True)
    except ValidationError as exc:  # an error about the whole object shows it as sent
        raise _as_sent(exc, rest, {k: v for k, v in sent.items() if k != "event_id"}) from None
    if "event_id" not in value:
        return txn
    if not isinstance(claimed, str):
        raise _invalid("event_id", "string_type", claimed)
    if claimed not in ("", txn.event_id):
        wrong = PydanticCustomError(
            "event_id_mismatch",
            "event_id does not match its transaction_id (expected {expected}, or omit it)",
            {"expected": txn.event_id},
        )
        raise _invalid("event_id", wrong, claimed)
    return txn


_EVENT_TIME_FORMAT = PydanticCustomError(
    "string_pattern_mismatch",
    f"event_time must be {EVENT_TIME_FORM}, e.g. 2026-06-01T10:00:00Z",
    {"pattern": f"^{EVENT_TIME.pattern}$"},
)


def _invalid(
    field: str, error: str | PydanticCustomError, value: object, ctx: dict[str, Any] | None = None
) -> ValidationError:
    detail = InitErrorDetails(type=error, loc=(field,), input=value)
    if ctx:
        detail["ctx"] = ctx
    return ValidationError.from_exception_data("Transaction", [detail])


def _as_sent(exc: ValidationError, validated: object, sent: object) -> ValidationError:
    """``exc`` with ``sent`` as the input of each error whose input was ``validated`` (the
    object, its event_time read already)."""
    if not any(error["input"] is validated for error in exc.errors()):
        return exc
    details = []
    for error in exc.errors(include_url=False):
        detail = InitErrorDetails(
            type=error["type"],
            loc=error["loc"],
            input=sent if error["input"] is validated else error["input"],
        )
        if "ctx" in error:
            detail["ctx"] = error["ctx"]
        details.append(detail)
    return ValidationError.from_exception_data(exc.title, details)


_DATETIME: TypeAdapter[datetime] = TypeAdapter(datetime)


def _event_time(text: str) -> datetime:
    """``text`` read as strict JSON mode reads a date-time; its error named
    ``event_time``, as JSON mode names it."""
    try:
        return _DATETIME.validate_strings(text, strict=True)
    except ValidationError as exc:
        [error] = exc.errors(include_url=False)
        raise _invalid("event_time", error["type"], text, error.get("ctx")) from None


class _RequestSchema:
    """``Transaction``'s JSON Schema with the rules a request body adds to the contract."""

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler(core_schema)
        fields = handler.resolve_ref_schema(schema)["properties"]
        fields["event_time"].update(pattern=f"^{EVENT_TIME.pattern}$", description=EVENT_TIME_RULE)
        fields["event_id"].update(const="", description=EVENT_ID_RULE)
        return schema


RequestTransaction = Annotated[Transaction, WrapValidator(_strict_transaction), _RequestSchema]
"""A transaction in a request body (strict; its OpenAPI schema is named ``Transaction``)."""


class _Answer(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())


class Score(_Answer):
    """The score of one transaction."""

    transaction_id: str
    score: float = Field(ge=0, le=1, description="P(fraud) by the model")
    decision: bool = Field(description="score >= threshold: true means decline or review")
    threshold: float
    model_name: str
    model_version: str
    feature_age_s: float | None = Field(
        description="age of the newest customer/merchant feature used; null: none was known"
    )
    feature_ages_s: dict[str, float | None] = Field(
        description="per stored feature view; null where the view did not know the entity"
    )
    unknown_customer: bool = Field(description="scored with the new-customer defaults")
    unknown_merchant: bool = Field(description="scored with the new-merchant defaults")

    @classmethod
    def of(cls, active: ActiveModel, scored: Scored, transaction_id: str) -> Score:
        """The answer for a score this replica made: built without validation (it cost
        8 us a payment, a quarter of a batch's answer; FastAPI passes a model instance
        through as it is). The schema fuzz test checks every answer against the OpenAPI."""
        return Score.model_construct(
            transaction_id=transaction_id,
            score=scored.score,
            decision=scored.decision,
            threshold=active.threshold,
            model_name=active.model.name,
            model_version=active.model.version,
            feature_age_s=scored.feature_age_s,
            feature_ages_s=scored.feature_ages_s,
            unknown_customer=scored.unknown_customer,
            unknown_merchant=scored.unknown_merchant,
        )


class PredictResponse(Score):
    request_id: str
    latency_ms: float = Field(description="time in this replica, request in to answer out")

    @classmethod
    def answer(
        cls, outcome: Outcome, transaction_id: str, request_id: str, started: float
    ) -> PredictResponse:
        """The answer to a request for one payment (``started``: its ``perf_counter``),
        built as :meth:`Score.of` builds a score."""
        return PredictResponse.model_construct(
            **dict(score_of(outcome, transaction_id)),
            request_id=request_id,
            latency_ms=(time.perf_counter() - started) * 1000,
        )


def score_of(outcome: Outcome, transaction_id: str) -> Score:
    """The score of one scored payment (row ``outcome.index`` of its batch)."""
    active = outcome.active
    return Score.of(active, outcome.batch.row(outcome.index, active.threshold), transaction_id)


DISTINCT_IDS = "distinct transaction ids (a repeated one is a 422 naming it)"


class BatchBody(BaseModel):
    """A batch request but for its limit: ``build_http`` declares ``BatchRequest``, this
    with the deployment's ``max_request_items`` as the list's ``max_length`` (refused
    before the items are validated, 422 ``too_long``; ``maxItems`` in the schema)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    transactions: list[RequestTransaction] = Field(min_length=1, description=DISTINCT_IDS)

    def check(self) -> None:
        """What JSON Schema cannot say: ids repeated in the batch, a 422 naming the item."""
        seen: set[str] = set()
        for i, txn in enumerate(self.transactions):
            if txn.transaction_id in seen:
                where = ("transactions", i, "transaction_id")
                raise RequestValidationError(
                    [_error("duplicate", where, txn.transaction_id, "repeated in the batch")]
                )
            seen.add(txn.transaction_id)


def _error(kind: str, loc: tuple[str | int, ...], value: object, msg: str) -> dict[str, object]:
    """One entry of a 422's ``detail``, shaped as FastAPI shapes its own."""
    return {"type": kind, "loc": ("body", *loc), "input": value, "msg": msg}


class BatchResponse(_Answer):
    request_id: str
    latency_ms: float
    predictions: list[Score]


class Lineage(_Answer):
    feature_service: str
    feature_views_hash: str
    training_window: dict[str, datetime]
    rows: dict[str, int]
    metrics: dict[str, float]
    git_sha: str
    git_dirty: bool
    trigger_event_id: str | None
    created_at: datetime


PublicText = Annotated[str, AfterValidator(public)]
"""Text from the server's state, its paths replaced (see ``_errors.public``)."""


class Refused(_Answer):
    model_uri: PublicText | None = Field(description="models:/<name>/<version>")
    model_digest: str | None
    reason: PublicText
    at: datetime

    @classmethod
    def of(cls, refusal: Refusal | None) -> Self | None:
        if refusal is None:
            return None
        return cls(
            model_uri=refusal.model_uri,
            model_digest=refusal.model_digest,
            reason=refusal.reason,
            at=refusal.at,
        )


class Shadow(_Answer):
    model_version: str
    model_digest: str
    model_uri: str = Field(description="models:/<name>/<version>, in the replica's model store")
    threshold: float = Field(description="its own training threshold (its logged decisions)")
    loaded_at: datetime

    @classmethod
    def of(cls, shadow: ActiveModel | None) -> Self | None:
        if shadow is None:
            return None
        return cls(
            model_version=shadow.model.version,
            model_digest=shadow.model.sha256,
            model_uri=f"{STORE_SCHEME}{shadow.model.name}/{shadow.model.version}",
            threshold=shadow.threshold,
            loaded_at=shadow.loaded_at,
        )


class CanaryInfo(Shadow):
    fraction: float = Field(description="the fraction of customers whose payments it answers")

    @classmethod
    def of_canary(cls, canary: Canary | None) -> Self | None:
        shadow = Shadow.of(None if canary is None else canary.active)
        if shadow is None or canary is None:
            return None
        return cls(**shadow.model_dump(), fraction=canary.fraction)


class ModelInfo(_Answer):
    model_name: str
    model_version: str
    model_digest: str
    model_uri: str = Field(description="models:/<name>/<version>, in the replica's model store")
    threshold: float
    threshold_source: str = Field(description="user_config or model (its training threshold)")
    loaded_at: datetime
    features: list[str]
    lineage: Lineage
    refused: Refused | None = Field(description="the last configuration refused, if any")
    shadow: Shadow | None = Field(
        None, description="the version scored beside this one on every request (its scores "
        "go to the prediction log, never into an answer), if user_config names one"
    )  # fmt: skip
    shadow_refused: Refused | None = Field(
        None, description="the shadow user_config names, if it could not be loaded"
    )
    canary: CanaryInfo | None = Field(
        None, description="the version answering a fraction of the customers, if any"
    )
    canary_refused: Refused | None = Field(
        None, description="the canary user_config names, if it could not be loaded"
    )

    @classmethod
    def of(
        cls, active: ActiveModel, refusal: Refusal | None, shadow: ActiveModel | None = None,
        shadow_refused: Refusal | None = None, canary: Canary | None = None,
        canary_refused: Refusal | None = None,
    ) -> Self:  # fmt: skip
        m = active.model.metadata
        return cls(
            model_name=m.model_name,
            model_version=m.version,
            model_digest=m.sha256,
            model_uri=f"{STORE_SCHEME}{active.model.name}/{active.model.version}",
            threshold=active.threshold,
            threshold_source=active.threshold_source,
            loaded_at=active.loaded_at,
            features=active.model.features.names,
            refused=Refused.of(refusal),
            shadow=Shadow.of(shadow),
            shadow_refused=Refused.of(shadow_refused),
            canary=CanaryInfo.of_canary(canary),
            canary_refused=Refused.of(canary_refused),
            lineage=Lineage(
                feature_service=m.feature_service,
                feature_views_hash=m.feature_views_hash,
                training_window={"start": m.training_window.start, "end": m.training_window.end},
                rows=m.rows.model_dump(),
                metrics=dict(m.metrics),
                git_sha=m.git_sha,
                git_dirty=m.git_dirty,
                trigger_event_id=m.trigger_event_id,
                created_at=m.created_at,
            ),
        )


class Health(_Answer):
    ready: bool
    model_version: str | None
    reason: PublicText | None = None
    refused: Refused | None = None
    prediction_log_connected: bool
    prediction_log_queued: int
