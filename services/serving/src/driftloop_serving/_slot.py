"""The replica's one model, and how a new one replaces it.

``ModelSlot.apply(user_config)`` is what ``reconfigure`` does: resolve the version, read
it verified against the digest git declares, load it, warm it with one real scoring call,
and only then swap the reference the batch handler reads (one assignment: a batch scores
entirely with the old model or entirely with the new one).

Refusals. A wrong digest, a missing file, an unreadable or unwarmable model is refused:
logged, counted, and shown by ``/healthz`` and ``/model``; the model already loaded keeps
serving and ``apply`` returns normally. Raising there would make Ray stop the replica —
the one serving the old model — and start new ones that fail the same way. Only a
replica with no model yet raises (Ray then reports the deploy failed rather than running
a replica that can answer nothing but 503).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import ValidationError

from driftloop.events import Transaction
from driftloop.features import OnlinePlan, open_store
from driftloop.models import LoadedModel, ModelStore
from driftloop.settings import Settings
from driftloop_serving._config import ModelConfig, locate
from driftloop_serving._scoring import ActiveModel, ScoringPlan

if TYPE_CHECKING:
    from feast import FeatureStore

T = TypeVar("T")
Serial = Callable[[Callable[[], T]], T]
log = logging.getLogger(__name__)

WARMUP = Transaction(
    transaction_id="warmup",
    customer_id="warmup",
    merchant_id="warmup",
    amount=1.0,
    currency="EUR",
    merchant_category="warmup",
    channel="pos",
    country="DE",
    card_country="DE",
)


class ModelRefused(RuntimeError):
    """A model configuration that could not be made to serve."""


class NoModel(RuntimeError):
    """Nothing to score with: no model configured yet, or the configured one refused."""


@dataclass(frozen=True)
class Canary:
    """The canary version and the fraction of customers whose payments it answers; one
    object, so a batch reads both with one reference."""

    active: ActiveModel
    fraction: float


@dataclass(frozen=True)
class Refusal:
    model_uri: str | None
    model_digest: str | None
    reason: str
    at: datetime


def _inline(fn: Callable[[], T]) -> T:
    return fn()


class ModelSlot:
    """Holds the active model. ``serial`` runs a callable where scoring runs (so a warm-up
    never shares the feature store's connection with a batch in flight)."""

    def __init__(
        self,
        settings: Settings,
        *,
        serial: Serial[Any] = _inline,
        on_loaded: Callable[[ActiveModel, float], None] | None = None,
        on_refused: Callable[[Refusal], None] | None = None,
        max_rows: int = 256,
    ) -> None:
        self._settings = settings
        self._serial = serial
        self._on_loaded = on_loaded
        self._on_refused = on_refused
        self._store: FeatureStore | None = None
        self._plans: dict[str, OnlinePlan] = {}
        self._max_rows = max_rows
        self._lock = threading.Lock()  # one apply at a time; readers never take it
        self.active: ActiveModel | None = None
        self.refused: Refusal | None = None
        self.shadow: ActiveModel | None = None
        """Scored beside ``active`` on every batch; never answers (``user_config``'s
        ``shadow_uri``)."""
        self.shadow_refused: Refusal | None = None
        self.canary: Canary | None = None
        """Answers the payments of ``fraction`` of the customers (``user_config``'s
        ``canary_uri``); everything else is ``active``'s."""
        self.canary_refused: Refusal | None = None

    def apply(self, user_config: object) -> None:
        with self._lock:
            try:
                config = ModelConfig.model_validate(user_config or {})
            except ValidationError as exc:
                self._refuse(None, None, f"invalid user_config: {exc}")
                return
            self._apply_serving(config)
            if self.active is not None:
                self._apply_shadow(config)
                self._apply_canary(config)

    def _apply_serving(self, config: ModelConfig) -> None:
        if config.empty:
            if self.active is not None:
                # Unloading a serving model would only turn answers into 503s.
                self._refuse(None, None, "user_config names no model; keeping the loaded one")
            return
        if self.active is not None and self.active.model.sha256 == config.model_digest:
            self.active = self._with_threshold(self.active, config)
            self.refused = None
            return
        started = time.perf_counter()
        try:
            assert config.model_uri is not None and config.model_digest is not None
            fresh = self._load(config.model_uri, config.model_digest, config.threshold)
        except Exception as exc:  # any failure refuses the version, never the replica
            self._refuse(config.model_uri, config.model_digest, f"{type(exc).__name__}: {exc}")
            return
        self._swap(fresh, started)

    def _apply_shadow(self, config: ModelConfig) -> None:
        """Load, keep or drop the shadow. A shadow that cannot load is refused (shown by
        ``/model``, counted); the serving model is never affected."""
        current = self.shadow
        self.shadow, self.shadow_refused = self._challenger(
            "shadow", current, self.shadow_refused, config.shadow_uri, config.shadow_digest
        )

    def _apply_canary(self, config: ModelConfig) -> None:
        """Load, keep or drop the canary, or change its fraction. A canary that cannot load
        is refused like a shadow: its customers are answered by the serving version."""
        current = self.canary.active if self.canary is not None else None
        active, self.canary_refused = self._challenger(
            "canary", current, self.canary_refused, config.canary_uri, config.canary_digest
        )
        if active is None or config.canary_fraction is None:
            self.canary = None
        elif self.canary is None or (active, config.canary_fraction) != (
            self.canary.active,
            self.canary.fraction,
        ):
            self.canary = Canary(active, config.canary_fraction)
            log.info("canary %s answers %.4f of customers", active.model.version,
                     config.canary_fraction)  # fmt: skip

    def _challenger(
        self, role: str, current: ActiveModel | None, refused: Refusal | None,
        uri: str | None, digest: str | None,
    ) -> tuple[ActiveModel | None, Refusal | None]:  # fmt: skip
        """The challenger (shadow or canary) ``user_config`` declares, and its refusal:
        ``current`` kept when the digest is the same, else loaded; None when none is
        declared or it cannot load."""
        if uri is None or digest is None:
            if current is not None:
                log.info("%s %s removed", role, current.model.version)
            return None, None
        if current is not None and current.model.sha256 == digest:
            return current, refused
        started = time.perf_counter()
        try:
            loaded = self._load(uri, digest, None)
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"
            log.error("refused %s %s: %s", role, uri, reason)
            return None, Refusal(uri, digest, reason, datetime.now(UTC))
        seconds = time.perf_counter() - started
        log.info("%s %s loaded in %.3f s", role, loaded.model.version, seconds)
        return loaded, None

    def _swap(self, fresh: ActiveModel, started: float) -> None:
        self.active = fresh  # the swap: one reference assignment
        self.refused = None
        seconds = time.perf_counter() - started
        log.info(
            "serving %s %s (%s) after %.3f s",
            fresh.model.name,
            fresh.model.version,
            fresh.model_uri,
            seconds,
        )
        if self._on_loaded is not None:
            self._on_loaded(fresh, seconds)

    def _refuse(self, uri: str | None, digest: str | None, reason: str) -> None:
        refusal = Refusal(uri, digest, reason, datetime.now(UTC))
        self.refused = refusal
        if self._on_refused is not None:
            self._on_refused(refusal)
        if self.active is None:
            raise ModelRefused(reason)
        log.error(
            "refused model %s (sha256 %s), still serving %s: %s",
            uri,
            digest,
            self.active.model.version,
            reason,
        )

    def _load(self, uri: str, digest: str, threshold: float | None) -> ActiveModel:
        """The version at ``uri``, verified against ``digest``, planned and warmed;
        ``threshold`` None: the model's own."""
        root, name, version = locate(uri)
        store = ModelStore(root if root is not None else self._settings.model_store)
        stored = store.get(name, version)
        model = LoadedModel.load(stored, expected_sha256=digest)
        source = "user_config"
        if threshold is None:
            threshold, source = model.threshold, "model"
        if threshold is None:
            raise ModelRefused(f"{name}/{version} records no threshold and user_config sets none")
        plan = ScoringPlan(model, self._online(model.metadata.feature_service), self._max_rows)
        active = ActiveModel(
            model=model,
            plan=plan,
            threshold=threshold,
            threshold_source=source,
            model_uri=stored.uri,
            loaded_at=datetime.now(UTC),
        )
        self._serial(lambda: active.score([WARMUP]))
        return active

    def _with_threshold(self, active: ActiveModel, config: ModelConfig) -> ActiveModel:
        """The same model under a changed threshold (no reload)."""
        threshold, source = config.threshold, "user_config"
        if threshold is None:
            threshold, source = active.model.threshold, "model"
        if threshold is None or threshold == active.threshold:
            return active
        return ActiveModel(
            model=active.model,
            plan=active.plan,
            threshold=threshold,
            threshold_source=source,
            model_uri=active.model_uri,
            loaded_at=active.loaded_at,
        )

    def _online(self, service: str) -> OnlinePlan:
        """The online read of ``service``, planned once per replica (resolving a service
        in Feast's registry costs milliseconds; models of one service share it)."""
        if service not in self._plans:
            if self._store is None:
                self._store = open_store(self._settings)
            store = self._store
            self._plans[service] = OnlinePlan(store, store.get_feature_service(service))
        return self._plans[service]
