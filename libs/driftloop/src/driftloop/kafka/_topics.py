"""Topic creation and inspection through the admin client."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from kafka import TopicPartition
from kafka.errors import TopicAlreadyExistsError

from driftloop.kafka._clients import connect_admin, connect_consumer
from driftloop.settings import TOPICS, Settings


@dataclass(frozen=True)
class TopicInfo:
    name: str
    partitions: int
    end_offsets: dict[int, int]

    @property
    def messages(self) -> int:
        """Sum of end offsets: records ever written (retention may have dropped some)."""
        return sum(self.end_offsets.values())


def ensure_topics(settings: Settings) -> list[str]:
    """Create every driftloop topic that does not exist yet; return the names created."""
    admin = connect_admin(settings)
    try:
        existing = set(admin.list_topics())
        wanted = {settings.topic(name) for name in TOPICS} - existing
        if not wanted:
            return []
        spec = {
            name: {
                "num_partitions": settings.topic_partitions,
                "replication_factor": settings.topic_replication_factor,
                "configs": {"retention.ms": str(settings.topic_retention_ms)},
            }
            for name in sorted(wanted)
        }
        # Another process may win the race; the topic is then there, which is all we need.
        with contextlib.suppress(TopicAlreadyExistsError):
            admin.create_topics(spec, wait_for_metadata=True)
        return sorted(wanted)
    finally:
        admin.close()


def describe_topics(settings: Settings) -> list[TopicInfo]:
    """driftloop's topics that exist, with the end offset of every partition."""
    consumer = connect_consumer(settings, group_id=None)
    try:
        present = consumer.topics()
        infos = []
        for logical in TOPICS:
            name = settings.topic(logical)
            if name not in present:
                continue
            partitions = sorted(consumer.partitions_for_topic(name) or ())
            tps = [TopicPartition(name, p) for p in partitions]
            ends = consumer.end_offsets(tps) if tps else {}
            infos.append(TopicInfo(name, len(tps), {tp.partition: ends[tp] for tp in tps}))
        return infos
    finally:
        consumer.close(autocommit=False)
