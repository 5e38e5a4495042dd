"""The simulator's stream against the real broker: counts, delayed labels, scoring calls."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from driftloop_simulator import StreamConfig, WorldConfig, build_world, run_stream
from pydantic import SecretStr

from driftloop.events import Label, Transaction
from driftloop.kafka import EventConsumer, Received
from driftloop.settings import Settings

# about 3x what it needs: the longest waits out an unreachable endpoint (~20 s)
pytestmark = pytest.mark.timeout(60)


def _consume(
    settings: Settings, contract: type[Any], want: int, timeout_s: float = 60
) -> list[Any]:
    consumer = EventConsumer(settings, contract, group_id=f"sim-{uuid.uuid4().hex[:8]}")
    got: list[Received[Any]] = []

    def collect(batch: Sequence[Received[Any]]) -> None:
        got.extend(batch)

    deadline = time.monotonic() + timeout_s
    try:
        while len(got) < want and time.monotonic() < deadline:
            consumer.poll_batch(collect, timeout_s=0.5)
        # a little longer, to see anything beyond what we expect
        end = time.monotonic() + 1.5
        while time.monotonic() < end:
            consumer.poll_batch(collect, timeout_s=0.3)
    finally:
        consumer.close()
    return [r.event for r in got]


class _Scoring(BaseHTTPRequestHandler):
    """Records every POSTed body and its X-API-Key; answers ``refusal`` to every fifth
    request (a 422 is the caller's fault and is not retried), or, with ``first_try`` set,
    a 500 to the first attempt of every fifth transaction (what Serve answers when the
    replica handling a call dies; the client retries it)."""

    protocol_version = "HTTP/1.1"  # keep-alive, as a real endpoint would
    wbufsize = 65536  # headers and body in one write: no Nagle/delayed-ACK stalls

    bodies: list[dict[str, Any]]
    keys: list[str | None]
    lock: threading.Lock
    first_try: bool

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with self.lock:
            self.bodies.append(body)
            self.keys.append(self.headers.get("X-API-Key"))
            if self.first_try:
                ids = [b["transaction_id"] for b in self.bodies]
                fresh = ids.count(body["transaction_id"]) == 1
                fail = fresh and len(set(ids)) % 5 == 0
            else:
                fail = len(self.bodies) % 5 == 0
        status = (500 if self.first_try else 422) if fail else 200
        route = "/fraud/predict/batch" if "transactions" in body else "/fraud/predict"
        if self.path != route:  # a batch to the one-payment route, or the other way
            status = 404
        payload = b'{"score": 0.1}'
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(params=[False], ids=["refusing"])
def scoring_server(
    request: pytest.FixtureRequest,
) -> Iterator[tuple[str, list[dict[str, Any]], list[str | None]]]:
    bodies: list[dict[str, Any]] = []
    keys: list[str | None] = []
    attrs = {"bodies": bodies, "keys": keys, "lock": threading.Lock(), "first_try": request.param}
    handler = type("Handler", (_Scoring,), attrs)
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/fraud/predict", bodies, keys
    server.shutdown()
    server.server_close()


def test_stream_publishes_scores_and_labels_after_the_delay(own_topics, scoring_server):
    url, bodies, keys = scoring_server
    lines: list[str] = []
    config = StreamConfig(
        rate=100, duration_s=3, label_delay_s=1.0, predict_url=url, progress_every_s=1
    )
    keyed = own_topics.model_copy(update={"serve_api_key": SecretStr("the-endpoint-s-key")})
    stats = run_stream(keyed, config, echo=lines.append)

    assert 250 <= stats.sent <= 310
    assert stats.send_errors == 0
    assert any("/s" in line for line in lines[:-1]), lines  # progress while running
    transactions = _consume(own_topics, Transaction, stats.sent)
    labels = _consume(own_topics, Label, stats.sent)
    sent_ids = [t.transaction_id for t in transactions]
    assert len(sent_ids) == len(set(sent_ids)) == stats.sent

    # every label belongs to a sent transaction, and came at least the delay after it
    assert stats.labels_sent == len(labels) == stats.sent
    by_id = {t.transaction_id: t for t in transactions}
    assert {label.transaction_id for label in labels} == set(by_id)
    gaps = [label.event_time - by_id[label.transaction_id].event_time for label in labels]
    assert min(gaps) >= timedelta(seconds=1.0)

    # each transaction was posted, as its contract JSON, and failures were counted
    assert len(bodies) == stats.sent
    assert {b["transaction_id"] for b in bodies} == set(by_id)
    first = bodies[0]
    assert first == by_id[first["transaction_id"]].model_dump(mode="json")
    assert stats.predict_failed == len(bodies) // 5
    assert stats.predict_ok == len(bodies) - stats.predict_failed
    assert stats.predict_failures == {"HTTP 422": stats.predict_failed}  # with the reason
    assert set(keys) == {"the-endpoint-s-key"}  # every call carries the endpoint's key

    # streamed customers are the backfill's customers (same seed, same world)
    world_customers = set(build_world(WorldConfig()).c_id.tolist())
    assert {t.customer_id for t in transactions} <= world_customers


@pytest.mark.parametrize("scoring_server", [True], ids=["dying"], indirect=True)
def test_a_500_is_retried_once_and_the_call_answered(own_topics, scoring_server):
    url, bodies, _ = scoring_server
    config = StreamConfig(rate=100, count=100, label_delay_s=0, predict_url=url)
    stats = run_stream(own_topics, config, echo=lambda _: None)
    ids = [b["transaction_id"] for b in bodies]
    assert stats.sent == len(set(ids)) == 100
    assert stats.predict_retried == len(ids) - 100 == 20  # every fifth transaction, once
    assert (stats.predict_ok, stats.predict_failed) == (100, 0)
    assert stats.predict_failures == {}


def test_batched_scoring_sends_every_payment_once_and_counts_each(own_topics, scoring_server):
    """With predict_batch, payments go to the batch route in calls of at most that many; a
    refused call counts each of its payments failed; every payment is published once."""
    url, bodies, _ = scoring_server
    config = StreamConfig(rate=200, count=203, label_delay_s=0, predict_url=url,
                          predict_batch=8)  # fmt: skip
    stats = run_stream(own_topics, config, echo=lambda _: None)
    sizes = [len(b["transactions"]) for b in bodies]
    ids = [t["transaction_id"] for b in bodies for t in b["transactions"]]
    assert stats.sent == len(ids) == len(set(ids)) == 203
    assert max(sizes) == 8 and len(bodies) < 203 // 2
    refused = sum(sizes[4::5])  # every fifth call answered 422: not retried
    assert (stats.predict_ok, stats.predict_failed) == (203 - refused, refused)
    assert stats.predict_failures == {"HTTP 422": refused}
    assert stats.predict_retried == 0
    published = {t.transaction_id for t in _consume(own_topics, Transaction, 203)}
    assert published == set(ids)


def test_a_partly_filled_batch_is_sent_after_its_linger(own_topics, scoring_server):
    """At a rate that never fills a batch, payments still leave within the linger (0.1 s),
    not at the end of the stream."""
    url, bodies, _ = scoring_server
    config = StreamConfig(rate=20, count=30, label_delay_s=0, predict_url=url,
                          predict_batch=64)  # fmt: skip
    stats = run_stream(own_topics, config, echo=lambda _: None)
    assert stats.sent == sum(len(b["transactions"]) for b in bodies) == 30
    assert len(bodies) >= 5, [len(b["transactions"]) for b in bodies]


def test_an_unreachable_scoring_endpoint_is_counted_not_fatal(own_topics):
    config = StreamConfig(
        rate=500,
        count=60,
        label_delay_s=0,
        predict_url="http://127.0.0.1:9/fraud/predict",
        predict_timeout_s=0.5,
        # each call backs off 1.2 s over its two retries: 16 in flight, not 4, so the run
        # takes about 5 s rather than 20
        predict_concurrency=16,
    )
    stats = run_stream(own_topics, config, echo=lambda _: None)
    assert (stats.sent, stats.predict_failed, stats.predict_ok) == (60, 60, 0)
    assert stats.predict_failures == {"no connection": 60}
    assert stats.predict_retried == 60 * config.predict_retries  # retried, then counted
    assert len(_consume(own_topics, Transaction, 60)) == 60


def test_sigterm_stops_the_cli_cleanly_after_a_flush(own_topics):
    env = {**os.environ, "DRIFTLOOP_TOPIC_PREFIX": own_topics.topic_prefix}
    command = [str(Path(sys.executable).parent / "driftloop-simulator")]
    command += ["stream", "--rate", "200", "--label-delay", "1", "--progress-every", "1"]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        assert proc.stdout is not None
        while time.monotonic() < deadline:  # wait for the first progress line
            if "/s)" in proc.stdout.readline().decode():
                break
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err.decode()
    done = re.search(r"sent (\d+) .*labels (\d+) sent .*\(done\)", out.decode())
    assert done, out.decode()
    sent, labels = int(done.group(1)), int(done.group(2))
    assert sent > 0
    assert len(_consume(own_topics, Transaction, sent)) == sent
    assert len(_consume(own_topics, Label, labels)) == labels


def test_labels_of_a_warped_stream_are_stamped_in_its_event_time(own_topics):
    """At a time warp a label's wall delay spans warp times as much event time: a label
    stamped with the wall clock would be days older than its payment, so label-time
    reasoning downstream (labels known by a midnight, by a training window's end) breaks."""
    config = StreamConfig(rate=50, count=50, label_delay_s=0.5, time_warp=600.0)
    stats = run_stream(own_topics, config, echo=lambda _: None)
    assert stats.labels_sent == stats.sent == 50
    transactions = {t.transaction_id: t for t in _consume(own_topics, Transaction, 50)}
    labels = _consume(own_topics, Label, 50)
    assert {label.transaction_id for label in labels} == set(transactions)
    gaps = {label.event_time - transactions[label.transaction_id].event_time for label in labels}
    assert gaps == {timedelta(seconds=300)}
    times = [t.event_time for t in transactions.values()]
    assert max(times) - min(times) > timedelta(seconds=300)  # the stream ran in warped time
