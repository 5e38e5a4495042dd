"""The trigger's durable state in SQLite: decisions, the outbox they form, and offsets.

A batch of events is decided in one transaction that also claims each event id (the
:class:`~driftloop.ledger.Ledger`) and saves the offsets after the batch, so a recorded
decision and the position past its event commit together, before Kafka's offset commit.
A ``submit`` decision is an outbox entry until the backend accepted it; submitting it
again after a crash is harmless because its run id derives from the event id.

A ``wait`` decision holds a severe event until enough labelled evidence exists: the model
is recorded as waiting (since the first held event, with the latest one) in the same
transaction, so a restart goes on waiting. The wait ends when a run of the model is
decided, or when :meth:`DecisionStore.resolve` turns the latest held event's decision
into a submission (``max_wait``) or a skip.

A shadow or canary verdict, or a rollback, is not decided but acted on: its id is claimed and the
event kept in ``shadow_actions`` in the batch's transaction; the git change it asks for is
then made (see ``_verdict``, ``_rollback``) and its outcome recorded. A crash between the
commit and the record makes the change again, which git's state then shows as already
made.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from driftloop.events import DriftEvent
from driftloop.ledger import Ledger
from driftloop_trigger._decide import Decision

_SCHEMA = """
CREATE TABLE IF NOT EXISTS decisions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    model TEXT NOT NULL,
    model_version TEXT NOT NULL,
    window_start TEXT NOT NULL,
    window_end TEXT NOT NULL,
    decided_at REAL NOT NULL,
    outcome TEXT NOT NULL,
    reason TEXT NOT NULL,
    detail TEXT NOT NULL,
    run_id TEXT NOT NULL,
    parameters TEXT,
    submitted_at REAL,
    created INTEGER,
    backend TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    published INTEGER NOT NULL DEFAULT 0,
    deliveries INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX IF NOT EXISTS decisions_model ON decisions (model, outcome, decided_at);
CREATE INDEX IF NOT EXISTS decisions_window
    ON decisions (model, model_version, window_start, window_end);
CREATE TABLE IF NOT EXISTS waiting (
    model TEXT PRIMARY KEY,
    since REAL NOT NULL,
    event_id TEXT NOT NULL,
    run_id TEXT NOT NULL,
    event TEXT NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS shadow_actions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    model TEXT NOT NULL,
    serving TEXT NOT NULL,
    shadow TEXT NOT NULL,
    verdict TEXT NOT NULL,
    action TEXT NOT NULL,
    event TEXT NOT NULL,
    received_at REAL NOT NULL,
    acted_at REAL,
    outcome TEXT,
    detail TEXT,
    commit_sha TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
);
CREATE TABLE IF NOT EXISTS offsets (
    topic TEXT NOT NULL, partition INTEGER NOT NULL, next_offset INTEGER NOT NULL,
    PRIMARY KEY (topic, partition)
);
"""


@dataclass(frozen=True)
class Recorded:
    """A decision as stored."""

    event_id: str
    kind: str
    model: str
    outcome: str
    reason: str
    detail: str
    run_id: str
    parameters: dict[str, str]
    submitted: bool
    created: bool | None
    attempts: int

    @property
    def message(self) -> str:
        return f"{self.reason}: {self.detail}"


@dataclass(frozen=True)
class Held:
    """A model waiting for evidence: since its first held event, holding the latest."""

    model: str
    since: datetime
    event: DriftEvent
    run_id: str


Decider = Callable[[sqlite3.Connection, DriftEvent], tuple[Decision, str, dict[str, str]]]
"""(connection, event) → (decision, run id, workflow parameters if submitted)."""

_SELECT = (
    "SELECT event_id, kind, model, outcome, reason, detail, run_id, parameters, submitted_at,"
    " created, attempts FROM decisions"
)


def _row(row: tuple[object, ...]) -> Recorded:
    event_id, kind, model, outcome, reason, detail, run_id, params, at, created, attempts = row
    return Recorded(
        event_id=str(event_id),
        kind=str(kind),
        model=str(model),
        outcome=str(outcome),
        reason=str(reason),
        detail=str(detail),
        run_id=str(run_id),
        parameters=json.loads(str(params)) if params else {},
        submitted=at is not None,
        created=None if created is None else bool(created),
        attempts=int(str(attempts)),
    )


def _ts(moment: datetime) -> float:
    return moment.timestamp()


def _decided(
    now: datetime, decision: Decision, run_id: str, parameters: dict[str, str]
) -> tuple[object, ...]:
    """A decision's columns: decided_at, outcome, reason, detail, run_id, parameters."""
    stored = json.dumps(parameters) if decision.outcome == "submit" else None
    return (_ts(now), decision.outcome, decision.reason, decision.detail, run_id, stored)


def _asks(event: DriftEvent) -> tuple[str, str, str, str]:
    """(serving, shadow, verdict, action) of an event the trigger acts on in git. A canary
    verdict: its canary in the ``shadow`` column. A rollback: the version that regressed
    (serving), the version it returns to (in the ``shadow`` column), verdict ``regressed``
    and action ``rollback``."""
    v = event.live_verdict
    if v is not None:
        return event.model_version, v.version, v.verdict, v.action
    if event.regression is not None:
        return event.model_version, event.regression.previous_version, "regressed", "rollback"
    raise ValueError(f"event {event.event_id} ({event.kind}) asks for no change in git")


class DecisionStore:
    def __init__(self, path: Path) -> None:
        self.ledger = Ledger(path)
        self._db = self.ledger.connect()
        self._db.executescript(_SCHEMA)

    # -- deciding a batch -------------------------------------------------------------------
    def record(
        self,
        topic: str,
        events: Iterable[DriftEvent],
        next_offsets: dict[int, int],
        decider: Decider,
        now: datetime,
        verdicts: Iterable[DriftEvent] = (),
    ) -> tuple[list[tuple[DriftEvent, Decision]], int]:
        """Decide every event not decided before, keep every shadow verdict not seen
        before for acting on, and save the offsets, in one transaction.

        Returns the new decisions and the number of events already seen (duplicates)."""
        decided: list[tuple[DriftEvent, Decision]] = []
        duplicates = 0
        with self.ledger.transaction(self._db) as db:
            for event in verdicts:
                if not Ledger.claim(db, event.event_id):
                    duplicates += 1
                    continue
                db.execute(
                    "INSERT INTO shadow_actions (event_id, model, serving, shadow, verdict,"
                    " action, event, received_at) VALUES (?,?,?,?,?,?,?,?)",
                    (event.event_id, event.model_name, *_asks(event), event.model_dump_json(),
                     _ts(now)),
                )  # fmt: skip
            for event in events:
                if not Ledger.claim(db, event.event_id):
                    duplicates += 1
                    db.execute(
                        "UPDATE decisions SET deliveries = deliveries + 1 WHERE event_id = ?",
                        (event.event_id,),
                    )
                    continue
                decision, run_id, parameters = decider(db, event)
                db.execute(
                    "INSERT INTO decisions (event_id, kind, model, model_version, window_start,"
                    " window_end, decided_at, outcome, reason, detail, run_id, parameters)"
                    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        event.event_id,
                        event.kind,
                        event.model_name,
                        event.model_version,
                        event.window.start.isoformat(),
                        event.window.end.isoformat(),
                        *_decided(now, decision, run_id, parameters),
                    ),
                )
                if decision.outcome == "wait":
                    db.execute(
                        "INSERT INTO waiting (model, since, event_id, run_id, event, updated_at)"
                        " VALUES (?,?,?,?,?,?) ON CONFLICT (model) DO UPDATE SET"
                        " event_id = excluded.event_id, run_id = excluded.run_id,"
                        " event = excluded.event, updated_at = excluded.updated_at",
                        (event.model_name, _ts(now), event.event_id, run_id,
                         event.model_dump_json(), _ts(now)),
                    )  # fmt: skip
                elif decision.outcome == "submit":
                    db.execute("DELETE FROM waiting WHERE model = ?", (event.model_name,))
                decided.append((event, decision))
            db.executemany(
                "INSERT INTO offsets (topic, partition, next_offset) VALUES (?,?,?)"
                " ON CONFLICT (topic, partition) DO UPDATE SET next_offset = excluded.next_offset",
                [(topic, p, o) for p, o in next_offsets.items()],
            )
        return decided, duplicates

    @staticmethod
    def history(
        db: sqlite3.Connection, event: DriftEvent, since: datetime
    ) -> tuple[list[str], list[tuple[str, datetime]], str | None]:
        """From this store, inside the batch's transaction: runs decided and not yet
        submitted, (run id, decided at) of runs submitted since ``since``, and a run
        already submitted for the event's model version and window."""
        model = event.model_name
        pending = [
            str(r)
            for (r,) in db.execute(
                "SELECT run_id FROM decisions WHERE model = ? AND outcome = 'submit'"
                " AND submitted_at IS NULL ORDER BY seq",
                (model,),
            )
        ]
        submitted = [
            (str(r), datetime.fromtimestamp(float(at), UTC))
            for r, at in db.execute(
                "SELECT run_id, decided_at FROM decisions WHERE model = ? AND outcome = 'submit'"
                " AND decided_at >= ? ORDER BY seq",
                (model, _ts(since)),
            )
        ]
        row = db.execute(
            "SELECT run_id FROM decisions WHERE model = ? AND model_version = ?"
            " AND window_start = ? AND window_end = ? AND outcome = 'submit' LIMIT 1",
            (
                model,
                event.model_version,
                event.window.start.isoformat(),
                event.window.end.isoformat(),
            ),
        ).fetchone()
        return pending, submitted, (str(row[0]) if row else None)

    @staticmethod
    def waiting_since(db: sqlite3.Connection, model: str) -> datetime | None:
        """When the model's first event still held for evidence was held, if one is."""
        row = db.execute("SELECT since FROM waiting WHERE model = ?", (model,)).fetchone()
        return None if row is None else datetime.fromtimestamp(float(row[0]), UTC)

    # -- waiting for evidence ---------------------------------------------------------------
    def held(self) -> list[Held]:
        """Every model waiting for evidence, by name."""
        rows = self._db.execute(
            "SELECT model, since, event, run_id FROM waiting ORDER BY model"
        ).fetchall()
        return [
            Held(
                str(model),
                datetime.fromtimestamp(float(since), UTC),
                DriftEvent.model_validate_json(str(event)),
                str(run_id),
            )
            for model, since, event, run_id in rows
        ]

    def resolve(
        self, model: str, decider: Decider, now: datetime
    ) -> tuple[DriftEvent, Decision] | None:
        """Decide the model's latest held event again (the periodic pass: ``max_wait`` may
        have passed with no event arriving). A submission or a skip replaces the held
        decision — announced anew, under its run id — and ends the wait; a wait changes
        nothing. None if the model is not waiting."""
        with self.ledger.transaction(self._db) as db:
            row = db.execute("SELECT event FROM waiting WHERE model = ?", (model,)).fetchone()
            if row is None:
                return None
            event = DriftEvent.model_validate_json(str(row[0]))
            decision, run_id, parameters = decider(db, event)
            if decision.outcome == "wait":
                return event, decision
            db.execute(
                "UPDATE decisions SET decided_at = ?, outcome = ?, reason = ?, detail = ?,"
                " run_id = ?, parameters = ?, published = 0 WHERE event_id = ?",
                (*_decided(now, decision, run_id, parameters), event.event_id),
            )
            db.execute("DELETE FROM waiting WHERE model = ?", (model,))
        return event, decision

    # -- the outbox -------------------------------------------------------------------------
    def pending(self) -> list[Recorded]:
        """Submit decisions the backend has not accepted yet, oldest first."""
        rows = self._db.execute(
            _SELECT + " WHERE outcome = 'submit' AND submitted_at IS NULL ORDER BY seq"
        )
        return [_row(r) for r in rows]

    def mark_submitted(self, event_id: str, created: bool, backend: str, at: datetime) -> None:
        self._db.execute(
            "UPDATE decisions SET submitted_at = ?, created = ?, backend = ?,"
            " attempts = attempts + 1, last_error = NULL WHERE event_id = ?",
            (_ts(at), int(created), backend, event_id),
        )

    def mark_failed_attempt(self, event_id: str, error: str) -> None:
        self._db.execute(
            "UPDATE decisions SET attempts = attempts + 1, last_error = ? WHERE event_id = ?",
            (error[:2000], event_id),
        )

    def unpublished(self) -> list[Recorded]:
        """Decisions whose workflow event is not acknowledged yet (a submit only once it
        was submitted; a skip or a wait at once), oldest first."""
        rows = self._db.execute(
            _SELECT + " WHERE published = 0 AND (outcome != 'submit' OR submitted_at IS NOT NULL)"
            " ORDER BY seq"
        )
        return [_row(r) for r in rows]

    def mark_published(self, event_ids: list[str]) -> None:
        with self.ledger.transaction(self._db) as db:
            db.executemany(
                "UPDATE decisions SET published = 1 WHERE event_id = ?", [(e,) for e in event_ids]
            )

    # -- shadow verdicts -------------------------------------------------------------------
    def verdicts_to_act(self) -> list[tuple[DriftEvent, int]]:
        """Shadow verdicts not acted on yet, oldest first, with their failed attempts."""
        rows = self._db.execute(
            "SELECT event, attempts FROM shadow_actions WHERE acted_at IS NULL ORDER BY seq"
        ).fetchall()
        return [(DriftEvent.model_validate_json(str(e)), int(n)) for e, n in rows]

    def mark_acted(
        self, event_id: str, outcome: str, detail: str, commit: str | None, at: datetime
    ) -> None:
        self._db.execute(
            "UPDATE shadow_actions SET acted_at = ?, outcome = ?, detail = ?, commit_sha = ?,"
            " attempts = attempts + 1, last_error = NULL WHERE event_id = ?",
            (_ts(at), outcome, detail[:4000], commit, event_id),
        )

    def rollbacks(self, model: str, db: sqlite3.Connection | None = None) -> dict[str, datetime]:
        """Versions of ``model`` this trigger rolled back, each with when (the latest)."""
        rows = (db or self._db).execute(
            "SELECT serving, max(acted_at) FROM shadow_actions WHERE model = ?"
            " AND action = 'rollback' AND outcome = 'rolled_back' GROUP BY serving",
            (model,),
        )
        return {str(v): datetime.fromtimestamp(float(at), UTC) for v, at in rows}

    def mark_act_failed(self, event_id: str, error: str) -> None:
        self._db.execute(
            "UPDATE shadow_actions SET attempts = attempts + 1, last_error = ? WHERE event_id = ?",
            (error[:2000], event_id),
        )

    # -- reading ----------------------------------------------------------------------------
    def offsets(self, topic: str) -> dict[int, int]:
        rows = self._db.execute(
            "SELECT partition, next_offset FROM offsets WHERE topic = ?", (topic,)
        )
        return {int(p): int(o) for p, o in rows}

    def decisions(self, model: str | None = None) -> Iterator[Recorded]:
        rows = self._db.execute(
            _SELECT + " WHERE ? IS NULL OR model = ? ORDER BY seq", (model, model)
        )
        for row in rows:
            yield _row(row)

    def close(self) -> None:
        self._db.close()


def horizon(now: datetime, cooldown: timedelta) -> datetime:
    """How far back submissions matter: the cooldown or a day, whichever is longer."""
    return now - max(cooldown, timedelta(days=1))
