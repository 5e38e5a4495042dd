"""Kafka I/O on kafka-python: idempotent publishing, at-least-once consuming, DLQ, topics."""

from driftloop.kafka._clients import (
    KafkaUnavailable,
    connect_admin,
    connect_consumer,
    connect_producer,
)
from driftloop.kafka._consumer import Batch, BatchResult, EventConsumer, Received, dead_letter_for
from driftloop.kafka._producer import EventProducer
from driftloop.kafka._topics import TopicInfo, describe_topics, ensure_topics

__all__ = [
    "Batch",
    "BatchResult",
    "EventConsumer",
    "EventProducer",
    "KafkaUnavailable",
    "Received",
    "TopicInfo",
    "connect_admin",
    "connect_consumer",
    "connect_producer",
    "dead_letter_for",
    "describe_topics",
    "ensure_topics",
]
