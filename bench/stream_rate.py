"""The stream service's end-to-end rate (events/s from `transactions` into the Feast online
store) against a bare kafka-python poll loop over the same topic, in the same run."""

from __future__ import annotations

import random
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from driftloop_stream import StreamService, StreamSettings
from kafka import KafkaConsumer

from bench._common import record
from driftloop.events import Transaction
from driftloop.features import apply_repo
from driftloop.kafka import EventProducer, connect_admin, ensure_topics
from driftloop.settings import TOPICS

N = 20_000


def publish(settings: StreamSettings) -> None:
    rng = random.Random(1)
    t = datetime.now(UTC) - timedelta(hours=N / 3600)
    with EventProducer(settings) as producer:
        for i in range(N):
            t += timedelta(seconds=rng.expovariate(1.0))
            producer.send(Transaction(
                transaction_id=f"b{i}", customer_id=f"c{rng.randrange(2000)}",
                merchant_id=f"m{rng.randrange(300)}", amount=round(rng.lognormvariate(3.5, 1), 2),
                currency="EUR", merchant_category="grocery", channel=rng.choice(["pos", "online"]),
                country="DE", card_country="DE", device_id=f"d{rng.randrange(3)}", event_time=t,
            ))  # fmt: skip
        producer.flush()


def bare_loop(settings: StreamSettings) -> float:
    consumer = KafkaConsumer(
        settings.topic("transactions"), bootstrap_servers=settings.kafka_bootstrap,
        group_id=f"bench-bare-{uuid.uuid4().hex[:6]}", auto_offset_reset="earliest",
        enable_auto_commit=False, max_poll_records=settings.stream_batch_max,
    )  # fmt: skip
    seen = 0
    started = time.perf_counter()
    while seen < N:
        for records in consumer.poll(timeout_ms=500).values():
            seen += len(records)
    elapsed = time.perf_counter() - started
    consumer.close()
    return elapsed


def service_run(settings: StreamSettings) -> float:
    service = StreamService(settings)
    started = time.perf_counter()
    while service.metrics.events._value.get() < N:
        service.consumer.poll_batch(service.handle, timeout_s=0.5)
    elapsed = time.perf_counter() - started
    service.close()
    return elapsed


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="bench-stream-"))
    settings = StreamSettings(
        state_dir=root / "state", feature_env="local", feature_data_uri=str(root / "features"),
        topic_prefix=f"bench-{uuid.uuid4().hex[:6]}.", stream_group="bench-stream",
        stream_linger_s=0.5,
    )  # fmt: skip
    ensure_topics(settings)
    apply_repo(settings)
    try:
        publish(settings)
        bare = bare_loop(settings)
        stream = service_run(settings)
    finally:
        admin = connect_admin(settings)
        admin.delete_topics([settings.topic(t) for t in TOPICS])
        admin.close()
    record(
        "stream_rate",
        {
            "events": N,
            "bare_poll_events_per_s": N / bare,
            "stream_service_events_per_s": N / stream,
            "ratio_stream_over_bare": (N / stream) / (N / bare),
            "batch_max": settings.stream_batch_max,
        },
    )


if __name__ == "__main__":
    main()
