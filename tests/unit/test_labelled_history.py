"""Joining transactions with labels that arrive in either order, in SQLite."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

from driftloop_stream._labelled import (
    SCHEMA,
    awaiting_rows,
    forget_older_than,
    insert_awaiting,
    match,
)

from driftloop.events import Label, Transaction
from tests.samples import sample_events

T0 = datetime(2026, 6, 1, tzinfo=UTC)


def transaction(transaction_id: str, event_time: datetime) -> Transaction:
    base = next(e for e in sample_events() if isinstance(e, Transaction))
    return base.model_copy(update={"transaction_id": transaction_id, "event_time": event_time})


def _db() -> sqlite3.Connection:
    db = sqlite3.connect(":memory:")
    db.executescript(SCHEMA)
    return db


def test_a_label_meets_its_transaction_whichever_comes_first():
    db = _db()
    first = transaction(transaction_id="t1", event_time=T0)
    second = transaction(transaction_id="t2", event_time=T0 + timedelta(minutes=1))
    insert_awaiting(db, awaiting_rows([first]))
    early = Label(transaction_id="t2", is_fraud=True, event_time=T0 + timedelta(days=2))
    assert match(db, [early]).empty  # t2 has not arrived: the label waits
    insert_awaiting(db, awaiting_rows([second]))
    late = Label(transaction_id="t1", is_fraud=False, event_time=T0 + timedelta(days=3))
    rows = match(db, [late])
    assert list(rows["transaction_id"]) == ["t1", "t2"]
    assert list(rows["is_fraud"]) == [False, True]
    assert rows["label_timestamp"].iloc[1] == early.event_time
    assert rows["amount"].iloc[0] == first.amount
    assert match(db, []).empty  # joined rows are gone: nothing is written twice


def test_what_never_meets_its_match_is_forgotten_after_the_horizon_in_event_time():
    db = _db()
    insert_awaiting(db, awaiting_rows([transaction(transaction_id="old", event_time=T0)]))
    match(db, [Label(transaction_id="lost", is_fraud=False, event_time=T0)])
    assert forget_older_than(db, 86400) == 0  # nothing newer yet: time has not moved on
    later = T0 + timedelta(days=2)
    insert_awaiting(db, awaiting_rows([transaction(transaction_id="new", event_time=later)]))
    assert forget_older_than(db, 86400) == 2
    assert match(db, [Label(transaction_id="old", is_fraud=True, event_time=later)]).empty
    assert list(match(db, [Label(transaction_id="new", is_fraud=True, event_time=later)])[
        "transaction_id"]) == ["new"]  # fmt: skip
