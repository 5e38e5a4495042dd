"""A consumer SIGKILLed in the middle of a batch loses nothing and duplicates no effect."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from driftloop.events import Transaction
from driftloop.kafka import EventProducer

# about 3x what it needs: two consumer processes over 300 events (~16 s)
pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[2]
N = 300


def _run(args: list[str], timeout_s: float) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "tests.integration.effect_consumer", *args],
        cwd=ROOT, capture_output=True, timeout=timeout_s, check=False,
    )  # fmt: skip


def test_sigkill_mid_batch_then_restart_processes_every_event_once(own_topics, tmp_path):
    settings = own_topics
    tag = uuid.uuid4().hex[:8]
    sent = [
        Transaction(
            transaction_id=f"crash-{tag}-{i}",
            customer_id=f"c-{i % 7}",
            merchant_id="m-1",
            amount=1 + i,
            currency="EUR",
            merchant_category="grocery",
            channel="pos",
            country="DE",
            card_country="DE",
        )
        for i in range(N)
    ]
    with EventProducer(settings) as producer:
        for event in sent:
            producer.send(event)
        producer.flush()

    db = tmp_path / "effects.sqlite"
    common = ["--db", str(db), "--group", f"crash-{tag}", "--prefix", settings.topic_prefix]
    common += ["--expect", str(N), "--batch", "40"]
    first = _run([*common, "--crash-after", "130"], 120)
    assert first.returncode == -signal.SIGKILL, first.stderr.decode()[-2000:]

    conn = sqlite3.connect(db)
    before = conn.execute("SELECT count(*) FROM effects").fetchone()[0]
    assert 0 < before < N, "the crash must come in the middle of the stream"

    second = _run(common, 180)
    assert second.returncode == 0, second.stderr.decode()[-2000:]

    effects = [r[0] for r in conn.execute("SELECT event_id FROM effects")]
    deliveries = [r[0] for r in conn.execute("SELECT event_id FROM deliveries")]
    assert sorted(effects) == sorted(e.event_id for e in sent)  # every event, exactly once
    redelivered = len(deliveries) - len(set(deliveries))
    # The killed batch's records after the last commit came again and were absorbed.
    assert redelivered > 0
    assert set(deliveries) == set(effects)
