"""What a deployment is built from (``ServeArgs``) and what it serves (``ModelConfig``).

``ServeArgs`` is the ``args:`` block of ``deploy/apps/<model>/serve.yaml``: fixed for the
life of a replica, a change restarts it. ``ModelConfig`` is the deployment's
``user_config``: the model version, its digest and the decision threshold, and optionally
a shadow version with its digest or a canary version with its digest and traffic
fraction, applied in place by ``reconfigure`` so a promotion never restarts a replica.

A canary answers the payments of a stable fraction of customers (:func:`in_canary`: the
first 8 bytes of the sha256 of the customer id, so every process and every replica puts
a customer on the same side, and a customer sees one model). A canary and a shadow are
not declared together: each is judged against the serving version alone, and a payment
answered by the canary has no serving score for a shadow to be paired with.

Model references (``model_uri``):

``models:/<name>/<version>``
    a version in the replica's own model store (``Settings.model_store``); the form the
    committed ``serve.yaml`` uses, so the file works from any checkout and on any cluster;
``/abs/path/<name>/<version>`` or ``<scheme>://…/<name>/<version>``
    a version directory in the store rooted two levels up.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from driftloop.settings import Settings

STORE_SCHEME = "models:/"
_DIGEST = re.compile(r"^(sha256:)?[0-9a-f]{64}$")
_VERSION = re.compile(r"^sha256-[0-9a-f]{16}$")
CANARY_BUCKETS = 10_000
"""A canary fraction is resolved to this many buckets of customers (0.01 %)."""


def customer_bucket(customer_id: str) -> int:
    """The customer's bucket in ``[0, CANARY_BUCKETS)``: the first 8 bytes of the sha256 of
    its id, big-endian, modulo ``CANARY_BUCKETS``. The same in every process (Python's
    ``hash`` is salted per process, so it is not used)."""
    digest = hashlib.sha256(customer_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") % CANARY_BUCKETS


def in_canary(customer_id: str, fraction: float) -> bool:
    """Whether the canary answers ``customer_id``'s payments at ``fraction`` of customers."""
    return customer_bucket(customer_id) < round(fraction * CANARY_BUCKETS)


class ServeArgs(BaseModel):
    """The application's build arguments. The override fields default to what the
    replica's environment says (``DRIFTLOOP_*``, inherited from the Ray head); tests and
    other environments set them to point a deployment elsewhere."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    max_batch_size: int = Field(
        256,
        ge=1,
        le=4096,
        description="most transactions scored in one model call: requests that arrive while "
        "a batch is scored are scored together, up to this many (never a timer)",
    )
    max_request_items: int = Field(256, ge=1, le=10_000, description="limit of /predict/batch")
    max_batch_payments: int = Field(
        2048,
        ge=1,
        le=1_000_000,
        description="payments of /predict/batch requests a replica takes at once, each "
        "batch counted by its Content-Length; a batch beyond them is refused (503, "
        "Retry-After) before its body is read, unless none is in flight. Serve's request "
        "limits count a batch of 256 like one payment",
    )
    log_queue_size: int = Field(
        10_000, ge=1, description="predictions waiting for Kafka before new ones are dropped"
    )
    log_linger_ms: int = Field(20, ge=0, le=5_000, description="producer batching delay")
    log_delivery_timeout_ms: int = Field(
        30_000,
        ge=6_000,
        le=600_000,
        description="how long a prediction may wait for Kafka before it is dropped; also "
        "how long a lost broker takes to show in /healthz",
    )
    log_proxy_url: str | None = Field(
        None,
        pattern=r"^socks5h?://",
        description="a SOCKS5 proxy the prediction log reaches Kafka through",
    )
    gauge_refresh_s: float = Field(
        5.0,
        gt=0,
        le=60,
        description="how often a replica reports its gauges (model_info) to Ray again; below "
        "Ray's metrics report interval (10 s by default), whose exporter drops a gauge value "
        "not reported within two intervals",
    )
    telemetry: bool = Field(
        True,
        description="log every prediction to Kafka and record per-score metrics (both off "
        "the request's path); off only to measure what they cost: the monitor reads the log",
    )
    auth: Literal["key", "off"] | None = Field(
        None,
        description="'off' serves the scoring routes without a key; unset: the replica's "
        "DRIFTLOOP_SERVE_AUTH ('key' by default: no key, no replica)",
    )
    api_key: SecretStr | None = Field(
        None,
        description="the X-API-Key the scoring routes require; leave unset and give the "
        "replicas DRIFTLOOP_SERVE_API_KEY or DRIFTLOOP_SERVE_API_KEY_PATH: a Serve config is "
        "readable through Ray's dashboard, and a key never goes into git",
    )

    # Overrides of the replica's Settings (unset: the environment's value).
    topic_prefix: str | None = None
    kafka_bootstrap_servers: str | None = None
    model_store_uri: str | None = None
    feature_env: Literal["local", "local-ray", "k8s"] | None = None
    feature_data_uri: str | None = None
    feature_repo: str | None = None
    state_dir: str | None = None

    @field_validator("auth", mode="before")
    @classmethod
    def _yaml_switch(cls, value: object) -> object:
        """YAML 1.1 (PyYAML, so Ray's serve config) reads an unquoted ``off`` as false."""
        if isinstance(value, bool):
            return "key" if value else "off"
        return value

    @model_validator(mode="after")
    def _key_or_off(self) -> Self:
        if self.auth == "off" and self.api_key is not None:
            raise ValueError("an api_key with auth 'off': set one or the other")
        return self

    def settings(self) -> Settings:
        """The replica's settings: the environment's, with this deployment's overrides.

        The API key's file stays the environment's: a ``state_dir`` here (a test's, the
        demo's) moves the deployment's data, not the cluster's key."""
        overrides: dict[str, object] = {
            "topic_prefix": self.topic_prefix,
            "kafka_bootstrap_servers": self.kafka_bootstrap_servers,
            "model_store_uri": self.model_store_uri,
            "feature_env": self.feature_env,
            "feature_data_uri": self.feature_data_uri,
            "feature_repo": Path(self.feature_repo) if self.feature_repo else None,
            "serve_auth": self.auth,
        }
        settings = Settings(**{k: v for k, v in overrides.items() if v is not None})  # type: ignore[arg-type]
        if not self.state_dir:
            return settings
        # A copy, not a second Settings: the key's path (derived from the environment's
        # state directory) is kept; nothing else derives from state_dir.
        return settings.model_copy(
            update={"state_dir": Path(self.state_dir).expanduser().absolute()}
        )


class ModelConfig(BaseModel):
    """The ``user_config`` of the deployment. All unset means "no model yet": the
    replica starts, answers 503 on scoring routes and reports not ready."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model_uri: str | None = Field(None, description="models:/<name>/<version>, or a path/URI")
    model_digest: str | None = Field(
        None, description="sha256 of the model file, as git declares it (64 hex)"
    )
    threshold: float | None = Field(
        None, ge=0, le=1, description="decision threshold; unset: the model's own"
    )
    shadow_uri: str | None = Field(
        None,
        description="a version scored on every request beside the serving one, in the same "
        "batch and on the same features; its scores go to the prediction log (role "
        "'shadow') and never into an answer",
    )
    shadow_digest: str | None = Field(
        None, description="sha256 of the shadow's model file, as git declares it (64 hex)"
    )
    canary_uri: str | None = Field(
        None,
        description="a version that answers the payments of canary_fraction of the customers "
        "(by a stable hash of customer_id); its answers carry its version and go to the "
        "prediction log as role 'canary'",
    )
    canary_digest: str | None = Field(
        None, description="sha256 of the canary's model file, as git declares it (64 hex)"
    )
    canary_fraction: float | None = Field(
        None, gt=0, lt=1, description="the fraction of customers the canary answers"
    )

    @field_validator("model_digest", "shadow_digest", "canary_digest")
    @classmethod
    def _digest(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not _DIGEST.match(value):
            raise ValueError("must be a sha256 hex digest (64 lowercase hex, 'sha256:' optional)")
        return value.removeprefix("sha256:")

    @model_validator(mode="after")
    def _together(self) -> Self:
        if (self.model_uri is None) != (self.model_digest is None):
            raise ValueError("model_uri and model_digest are set together or not at all")
        if self.model_uri is None and self.threshold is not None:
            raise ValueError("a threshold without a model")
        if self.model_uri is not None:
            assert self.model_digest is not None
            _same_file("model", self.model_uri, self.model_digest)
        if (self.shadow_uri is None) != (self.shadow_digest is None):
            raise ValueError("shadow_uri and shadow_digest are set together or not at all")
        if self.shadow_uri is not None:
            assert self.shadow_digest is not None
            if self.model_uri is None:
                raise ValueError("a shadow without a serving model")
            if self.shadow_digest == self.model_digest:
                raise ValueError("the shadow is the serving model itself")
            _same_file("shadow", self.shadow_uri, self.shadow_digest)
        canary = (self.canary_uri, self.canary_digest, self.canary_fraction)
        if any(v is None for v in canary) and any(v is not None for v in canary):
            raise ValueError(
                "canary_uri, canary_digest and canary_fraction are set together or not at all"
            )
        if self.canary_uri is not None:
            assert self.canary_digest is not None
            if self.model_uri is None:
                raise ValueError("a canary without a serving model")
            if self.canary_digest == self.model_digest:
                raise ValueError("the canary is the serving model itself")
            if self.shadow_uri is not None:
                raise ValueError(
                    "a canary and a shadow at once: declare one challenger at a time (each "
                    "is judged against the serving version alone)"
                )
            _same_file("canary", self.canary_uri, self.canary_digest)
        return self

    @property
    def empty(self) -> bool:
        return self.model_uri is None


def _same_file(role: str, uri: str, digest: str) -> None:
    """A version id is its file's digest's first 16 hex: ``uri`` and ``digest`` agree."""
    _, _, version = locate(uri)
    if version != f"sha256-{digest[:16]}":
        raise ValueError(
            f"{role}_uri names version {version}, {role}_digest is another file's "
            f"(sha256-{digest[:16]})"
        )


def locate(model_uri: str) -> tuple[str | None, str, str]:
    """``(store root or None for the replica's own store, model name, version id)``."""
    if model_uri.startswith(STORE_SCHEME):
        parts = model_uri.removeprefix(STORE_SCHEME).strip("/").split("/")
        if len(parts) != 2 or not all(parts):
            raise ValueError(f"{model_uri!r}: expected {STORE_SCHEME}<name>/<version>")
        root: str | None = None
        name, version = parts
    elif "://" in model_uri or Path(model_uri).is_absolute():
        pieces = model_uri.rstrip("/").rsplit("/", 2)
        if len(pieces) != 3 or not all(pieces):
            raise ValueError(f"{model_uri!r}: expected <store root>/<name>/<version>")
        root, name, version = pieces
    else:
        raise ValueError(
            f"{model_uri!r}: use {STORE_SCHEME}<name>/<version> (the replica's model store), "
            "an absolute path or a scheme:// URI of a version directory"
        )
    if not _VERSION.match(version):
        raise ValueError(f"{model_uri!r}: {version!r} is not a version id (sha256-<16 hex>)")
    return root, name, version
