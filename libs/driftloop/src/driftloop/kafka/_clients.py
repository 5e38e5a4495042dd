"""Construction of kafka-python clients with driftloop's settings and bounded start-up."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError

from driftloop.settings import Settings

C = TypeVar("C")


class KafkaUnavailable(RuntimeError):
    """The configured Kafka cannot be reached within the configured time."""


def _common(settings: Settings) -> dict[str, Any]:
    timeout_ms = int(settings.kafka_timeout_s * 1000)
    return {
        "bootstrap_servers": settings.kafka_bootstrap,
        "bootstrap_timeout_ms": timeout_ms,
        "reconnect_backoff_max_ms": 2000,
    }


def _connect(settings: Settings, factory: Callable[..., C], **config: Any) -> C:
    servers = ",".join(settings.kafka_bootstrap)
    try:
        return factory(**{**_common(settings), **config})
    except (KafkaTimeoutError, KafkaConnectionError) as exc:
        hint = (
            "start it with `driftloop up` (or `make up`)"
            if settings.kafka_managed
            else "check DRIFTLOOP_KAFKA_BOOTSTRAP_SERVERS"
        )
        raise KafkaUnavailable(
            f"Kafka at {servers} did not answer within {settings.kafka_timeout_s:g} s: {hint}"
        ) from exc
    except KafkaError as exc:
        raise KafkaUnavailable(f"Kafka at {servers}: {exc}") from exc


def connect_producer(settings: Settings, **overrides: Any) -> KafkaProducer:
    """An idempotent producer that waits for all in-sync replicas (``acks=all``)."""
    config: dict[str, Any] = {
        "enable_idempotence": True,
        "acks": "all",
        "linger_ms": 5,
        "max_block_ms": int(settings.kafka_timeout_s * 1000),
        "delivery_timeout_ms": 120_000,
        "request_timeout_ms": 30_000,
    }
    config.update(overrides)
    return _connect(settings, KafkaProducer, **config)


def connect_consumer(settings: Settings, group_id: str | None, **overrides: Any) -> KafkaConsumer:
    """A consumer that never commits on its own: the caller commits after its effect.

    ``group_id=None`` gives a group-less consumer for inspection (offsets, metadata).
    """
    config: dict[str, Any] = {
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "isolation_level": "read_committed",
        "max_poll_records": 500,
        # A dead member is noticed in 10 s instead of Kafka's 45 s default, so a restarted
        # service gets its partitions back quickly.
        "session_timeout_ms": 10_000,
        "heartbeat_interval_ms": 3_000,
    }
    config.update(overrides)
    return _connect(settings, KafkaConsumer, **config)


def connect_admin(settings: Settings) -> KafkaAdminClient:
    return _connect(
        settings, KafkaAdminClient, request_timeout_ms=int(settings.kafka_timeout_s * 1000)
    )
