"""A consumer process with a durable, idempotent effect, for the crash tests.

Every delivery is logged; the effect (one row per transaction) and the ledger claim commit
in one SQLite transaction. ``--crash-after K`` SIGKILLs the process right after its K-th
effect, in the middle of a batch whose offsets are not committed yet.

    python -m tests.integration.effect_consumer --db X --group G --prefix P --expect N
"""

from __future__ import annotations

import argparse
import os
import signal
import time
from collections.abc import Sequence
from pathlib import Path

from driftloop.events import Transaction
from driftloop.kafka import EventConsumer, Received
from driftloop.ledger import Ledger
from driftloop.settings import Settings


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--expect", type=int, required=True)
    parser.add_argument("--crash-after", type=int, default=0)
    parser.add_argument("--batch", type=int, default=40)
    args = parser.parse_args()

    ledger = Ledger(Path(args.db))
    conn = ledger.connect()
    conn.execute("CREATE TABLE IF NOT EXISTS deliveries (event_id TEXT, pid INTEGER)")
    conn.execute("CREATE TABLE IF NOT EXISTS effects (event_id TEXT, amount REAL)")
    settings = Settings(topic_prefix=args.prefix)
    consumer = EventConsumer(settings, Transaction, args.group, max_records=args.batch)
    effects_here = 0

    def effect(batch: Sequence[Received[Transaction]]) -> None:
        nonlocal effects_here
        for received in batch:
            event = received.event
            conn.execute("INSERT INTO deliveries VALUES (?, ?)", (event.event_id, os.getpid()))
            with ledger.transaction(conn):
                if ledger.claim(conn, event.event_id):
                    row = (event.event_id, event.amount)
                    conn.execute("INSERT INTO effects VALUES (?, ?)", row)
            effects_here += 1
            if args.crash_after and effects_here == args.crash_after:
                os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(0.002)

    done_at = None
    while True:
        consumer.poll_batch(effect, timeout_s=0.5)
        (count,) = conn.execute("SELECT count(DISTINCT event_id) FROM effects").fetchone()
        if count >= args.expect:
            done_at = done_at or time.monotonic()
            if time.monotonic() - done_at > 2:  # linger to catch stray redeliveries
                break
    consumer.close()


if __name__ == "__main__":
    main()
