"""Schemathesis on the scoring API, as its CLI runs it (``schemathesis run``), from Python:
every check it has, both generation modes (valid and invalid data), and every phase: the
schema's examples, coverage (boundary values, missing and mistyped fields, unexpected
methods, an undeclared and a malformed ``Content-Type``), fuzzing and stateful (skipped:
the API has no links). ``fuzz`` runs the engine on a loaded schema (in-process on the ASGI
app, or over HTTP) and reports what it sent, what it checked and what failed.

Two settings differ from the defaults, both stricter: nothing is written to disk (no
cache, no Hypothesis database), and invalid data must be refused with a 4xx (schemathesis
also accepts a 5xx there). A run that allows a 503 (a replica without a model) says so.
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import events, from_schema
from schemathesis.generation.case import Case
from schemathesis.hooks import HookContext
from schemathesis.schemas import BaseSchema

BATCH = "POST /predict/batch"
# schemathesis's expected statuses for invalid data, without its "5xx".
INVALID_REFUSED = ["400", "401", "403", "404", "405", "406", "409", "415", "422", "428", "429"]


def config(
    *,
    max_examples: int,
    seed: int = 20260601,
    headers: dict[str, str] | None = None,
    base_url: str | None = None,
    workers: int = 1,
    server_errors: tuple[str, ...] = (),
) -> SchemathesisConfig:
    """A run with every check on; ``server_errors`` are 5xx statuses a valid request may
    answer (documented ones, such as the 503 of a replica without a model)."""
    project: dict[str, Any] = {
        "seed": seed,
        "cache": {"enabled": False},
        "workers": workers,
        "generation": {"mode": "all", "max-examples": max_examples, "database": "none"},
        "checks": {
            "enabled": True,
            "not_a_server_error": {"expected-statuses": ["2xx", "3xx", "4xx", *server_errors]},
            "negative_data_rejection": {"expected-statuses": INVALID_REFUSED},
        },
    }
    if headers:
        project["headers"] = headers
    if base_url:
        project["base-url"] = base_url
    return SchemathesisConfig.from_dict(project)


def distinct_ids(context: HookContext, case: Case[Any]) -> Case[Any]:
    """A valid batch with its transaction ids made distinct (``map_case`` hook).

    The one rule of the API that JSON Schema cannot state (``uniqueItems`` compares whole
    items, not one property): the OpenAPI says it in words, the server refuses a repeated
    id with a 422, and the generator, left alone, repeats ids (its simplest batch is one
    item copied). Invalid batches are left as drawn: they must be refused either way."""
    meta = case.meta
    if case.operation.label != BATCH or meta is None or not meta.generation.mode.is_positive:
        return case
    transactions = case.body.get("transactions") if isinstance(case.body, dict) else None
    if not isinstance(transactions, list):
        return case
    fresh = (str(n) for n in itertools.count())  # the Id pattern admits digits
    seen: set[object] = set()
    for item in transactions:
        if isinstance(item, dict):
            while item.get("transaction_id") in seen:
                item["transaction_id"] = next(fresh)
            seen.add(item.get("transaction_id"))
    return case


@dataclass
class Report:
    statuses: Counter[str] = field(default_factory=Counter)  # "POST /predict 422" -> answers
    checks: Counter[str] = field(default_factory=Counter)  # check -> times it ran
    failures: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # the engine's own (schema, hooks, ...)

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())

    def by_route(self) -> dict[str, set[int]]:
        routes: dict[str, set[int]] = {}
        for key in self.statuses:
            method, path, status = key.split(" ")
            routes.setdefault(f"{method} {path}", set()).add(int(status))
        return routes


def fuzz(schema: BaseSchema) -> Report:
    """Run every phase of schemathesis on ``schema``; what it sent and found."""
    schema.hook("map_case")(distinct_ids)
    base_path = urlsplit(schema.get_base_url()).path.rstrip("/")
    report = Report()
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            recorder = event.recorder
            for interaction in recorder.interactions.values():
                if interaction.response is not None:
                    request = interaction.request
                    path = urlsplit(request.uri).path.removeprefix(base_path)
                    status = interaction.response.status_code
                    report.statuses[f"{request.method} {path} {status}"] += 1
            for case_id, checks in recorder.checks.items():
                for check in checks:
                    report.checks[check.name] += 1
                    if check.failure_info is not None:
                        case = recorder.cases[case_id].value
                        report.failures.append(
                            f"{recorder.label} {check.name}: {check.failure_info.failure}\n"
                            f"    {case.method} {case.formatted_path} headers={case.headers} "
                            f"body={case.body!r:.300}"
                        )
        elif isinstance(event, events.NonFatalError):
            report.errors.append(f"{event.label}: {event.info.title}: {event.info.message}")
        elif isinstance(event, events.FatalError):
            report.errors.append(f"fatal: {event.exception!r}")
        elif isinstance(event, events.EngineFinished):
            report.failures.extend(str(failure) for failure in event.failures)
    return report


def all_checks() -> set[str]:
    """The names of every check this version of schemathesis has."""
    load_all_checks()
    return set(CHECKS.get_all_names())
