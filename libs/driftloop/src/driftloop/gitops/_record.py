"""The promotion commit's message: the "why this model" record a reviewer reads.

When the promotion was triggered by a drift event, the message carries the event's
evidence — kind, verdict, window, the drifted columns with their statistics and p-values
— read from the monitor's window record (``<state_dir>/monitor/<model>/``), which holds
everything the event carried and more. Only the event id travels through the retrain
workflow's parameters, so where the promoting process cannot read the monitor's records
(a workflow pod without the monitor's volume) the message says so and keeps the id.

Its trailers (``Model:``, ``Version:``, ``Trigger-Event:`` …) are for machines: the sync
service, the end-to-end test and ``git log --grep`` find promotions by them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from driftloop.deployments import STORE_SCHEME as STORE
from driftloop.models import ModelVersion
from driftloop.models._version import METADATA

if TYPE_CHECKING:
    from driftloop.drift import WindowRecord
    from driftloop.events import DriftEvent

_SHOWN = ("pr_auc", "roc_auc", "recall_at_threshold", "brier", "threshold", "positives", "rows")


def _table(evaluation: dict[str, Any]) -> list[str]:
    challenger = evaluation.get("metrics") or {}
    champion = evaluation.get("champion") or {}
    baseline = evaluation.get("baseline") or {}
    lines = [f"    {'metric':<22}{'challenger':>12}{'champion':>12}{'baseline':>12}"]
    for name in _SHOWN:
        if name not in challenger:
            continue
        cells = [challenger.get(name), champion.get(name), baseline.get(name)]
        shown = "".join(
            f"{c:>12.4f}" if isinstance(c, int | float) else f"{'-':>12}" for c in cells
        )
        lines.append(f"    {name:<22}{shown}")
    return lines


_KIND = {"data": "data_drift", "performance": "performance_degraded"}
_SEVERITY = {"DRIFT": 0, "POSSIBLE_DRIFT": 1, "NO_DRIFT": 2}


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _evidence(event_id: str, record: WindowRecord | None, stored: ModelVersion) -> list[str]:
    if record is None:
        return [
            f"Drift evidence: event {event_id}; its window record was not found by the"
            " promoting process",
            "    (the monitor keeps it in its state directory; a process that does not share",
            "    that directory sees only the event id — see `driftloop drift report`)",
            "",
        ]
    drifted = [c for c in record.columns if c.category != "NO_DRIFT"]
    lines = [
        f"Drift evidence: event {event_id}",
        f"    kind {_KIND[record.kind]}, verdict {record.verdict}"
        + (f" ({record.streak} windows in a row)" if record.streak else "")
        + f", on {record.model} {record.version}",
        f"    window {record.start.isoformat()} .. {record.end.isoformat()} "
        f"({record.row_count} rows)",
    ]
    if record.columns:
        lines.append(f"    {len(drifted)} of {len(record.columns)} columns drifted:")
        lines.append(
            f"    {'column':<26}{'test':<12}{'statistic':>10}{'p':>10}{'p adj':>10}"
            f"{'effect':>10}  category"
        )
        for c in sorted(drifted, key=lambda c: (_SEVERITY[c.category], c.column)):
            lines.append(
                f"    {c.column:<26}{c.algorithm:<12}{_fmt(c.statistic):>10}{_fmt(c.p_value):>10}"
                f"{_fmt(c.p_adjusted):>10}{_fmt(c.effect):>10}  {c.category}"
            )
    if record.metrics:
        shown = ", ".join(f"{k}={v:.4g}" for k, v in sorted(record.metrics.items()))
        lines.append(f"    metrics: {shown}")
    if record.reference_profile:
        lines.append(f"    reference: {stored.in_store_scheme(record.reference_profile)}")
    return [*lines, ""]


def live_evidence(event: DriftEvent) -> list[str]:
    """The lines of a shadow's or a canary's live verdict: the labelled payments judged
    (a shadow's paired, a canary's and the serving version's of the same period), both
    versions' metrics on them and the p-values of both one-sided tests."""
    verdict = event.live_verdict
    if verdict is None:
        return []
    w = event.window
    role = "shadow" if event.shadow is not None else "canary"
    lines = [
        f"Live evidence: event {event.event_id}",
        f"    {role} {verdict.version} is {verdict.verdict} than serving {event.model_version}"
        f" ({verdict.reason}); asks to {verdict.action}",
    ]
    if event.canary is not None:
        c = event.canary
        lines += [
            f"    canary: {c.rows} labelled payments of its customers, {c.positives} positives,"
            f" {w.start.isoformat()} .. {w.end.isoformat()}",
            f"    serving: {c.serving_rows} labelled payments of the other customers,"
            f" {c.serving_positives} positives, since the canary's first answer",
            f"    first canary answer {c.first_seen.isoformat()},"
            f" deadline {c.deadline.isoformat()}",
        ]
    else:
        lines += [
            f"    {verdict.rows} paired labelled payments, {verdict.positives} positives, scored"
            f" by both {w.start.isoformat()} .. {w.end.isoformat()}",
            f"    first shadow score {verdict.first_seen.isoformat()},"
            f" deadline {verdict.deadline.isoformat()}",
        ]
    lines += _comparisons(
        ["serving", role, "diff", "se", "p better", "p worse"],
        [(c.metric, [f"{c.serving:.4f}", f"{c.challenger:.4f}",
                     f"{c.challenger - c.serving:+.4f}", f"{c.standard_error:.4f}",
                     _fmt(c.p_better), _fmt(c.p_worse)])
         for c in verdict.comparisons],
    )  # fmt: skip
    return [*lines, ""]


def _comparisons(headers: list[str], rows: list[tuple[str, list[str]]]) -> list[str]:
    """A table of metrics compared live, one line per metric (none without rows)."""
    if not rows:
        return []
    head = "".join(f"{h:>10}" for h in headers)
    return [f"    {'metric':<22}{head}"] + [
        f"    {metric:<22}" + "".join(f"{c:>10}" for c in cells) for metric, cells in rows
    ]


def regression_evidence(event: DriftEvent) -> list[str]:
    """The lines of a rollback's live evidence: the promoted version's labelled
    evaluations so far against the previous version's last ones (each pooled), per metric
    both values, the difference, its standard error and the corrected p-value of a
    regression."""
    r = event.regression
    if r is None:
        return []
    w, pw = event.window, r.previous_window
    lines = [
        f"Live evidence: event {event.event_id}",
        f"    {event.model_version} regressed against {r.previous_version} ({r.reason}),"
        f" on its evaluation {r.evaluation} after its promotion",
        f"    {event.model_version}: {r.rows} labelled payments, {r.positives} positives,"
        f" {w.start.isoformat()} .. {w.end.isoformat()}",
        f"    {r.previous_version} (last live figures): {r.previous_rows} labelled payments,"
        f" {r.previous_positives} positives, {pw.start.isoformat()} .. {pw.end.isoformat()}",
    ]
    lines += _comparisons(
        ["previous", "current", "diff", "se", "min diff", "p worse"],
        [(c.metric, [f"{c.previous:.4f}", f"{c.current:.4f}", f"{c.current - c.previous:+.4f}",
                     f"{c.standard_error:.4f}", f"{c.min_difference:.4f}", _fmt(c.p_worse)])
         for c in r.comparisons],
    )  # fmt: skip
    return [*lines, ""]


def revert_message(
    subject: str, promotion: str, path: str, reason: str, trigger_event_id: str | None,
    live: DriftEvent,
) -> str:  # fmt: skip
    """The record of a rollback: git's own revert subject and body line, then why (the
    regression's live evidence), then trailers naming the version rolled back."""
    r = live.regression
    assert r is not None, "a rollback carries its regression"
    model, bad = live.model_name, live.model_version
    lines = [
        f'Revert "{subject}"',
        "",
        f"This reverts commit {promotion}.",
        "",
        f"Why: {reason}" + (f"; triggered by event {trigger_event_id}" if trigger_event_id else ""),
        f"Serving again: {STORE}{model}/{r.previous_version} (in place of {STORE}{model}/{bad},"
        " which regressed live)",
        "",
        *regression_evidence(live),
        f"Changes: {path}",
        "",
        f"Model: {model}",
        f"Version: {r.previous_version}",
        f"Rolled-Back: {bad}",
    ]
    if trigger_event_id:
        lines.append(f"Trigger-Event: {trigger_event_id}")
    return "\n".join(lines) + "\n"


def removal_message(
    model: str, version: str, serving: str | None, path: str, reason: str,
    trigger_event_id: str | None, live: DriftEvent | None, role: str = "shadow",
) -> str:  # fmt: skip
    """The record of removing ``version`` from the shadow (or, ``role`` "canary", the
    canary) of ``serving``."""
    if role == "shadow":
        title, after = "Unshadow", f"no longer scored beside it: {STORE}{model}/{version}"
    else:
        title, after = "Uncanary", f"it answers the canary's customers again, not {version}"
    lines = [
        f"{title} {model} {version} ({reason})",
        "",
        f"Why: {reason}" + (f"; triggered by event {trigger_event_id}" if trigger_event_id else ""),
        f"Serving: {serving} (unchanged; {after})",
        "",
    ]
    if live is not None:
        lines += live_evidence(live)
    lines += [f"Changes: {path}", "", f"Model: {model}", f"{role.title()}-Removed: {version}"]
    if trigger_event_id:
        lines.append(f"Trigger-Event: {trigger_event_id}")
    return "\n".join(lines) + "\n"


def commit_message(
    stored: ModelVersion,
    path: str,
    evaluation: dict[str, Any] | None,
    trigger_event_id: str | None,
    reason: str,
    previous_uri: str | None,
    *,
    evidence: WindowRecord | None = None,
    shadow: bool = False,
    canary: float | None = None,
    live: DriftEvent | None = None,
) -> str:
    """The record of a promotion; ``shadow``: of declaring the version as the shadow of
    ``previous_uri`` (scored beside it on live traffic, answering nothing); ``canary``: as
    its canary answering that fraction of the customers; ``live``: the verdict that asked
    for it, whose evidence the message carries."""
    meta = stored.metadata
    window = meta.training_window
    verb, beside = "Promote", f"Replaces: {previous_uri or 'nothing (first version)'}"
    if shadow:
        verb, beside = (
            "Shadow",
            f"Beside: {previous_uri} (serving; this version scores in its shadow)",
        )
    elif canary is not None:
        verb = "Canary"
        beside = (f"Beside: {previous_uri} (serving; this version answers {canary:.4g} of the "
                  "customers, by a stable hash of customer_id)")  # fmt: skip
    lines = [
        f"{verb} {meta.model_name} {meta.version} ({reason})",
        "",
        f"Why: {reason}" + (f"; triggered by event {trigger_event_id}" if trigger_event_id else ""),
        beside,
        f"Data window: {window.start.isoformat()} .. {window.end.isoformat()} "
        f"({meta.rows.train} train / {meta.rows.validation} validation / "
        f"{meta.rows.holdout} holdout rows, data {meta.data_hash})",
        f"Features: {meta.feature_service} ({meta.feature_views_hash})",
        f"Trained from: {meta.git_sha}{' (dirty tree)' if meta.git_dirty else ''}",
        f"Lineage: {stored.store_uri(METADATA)}",
        "",
    ]
    if live is not None:
        lines += live_evidence(live)
    elif trigger_event_id:
        lines += _evidence(trigger_event_id, evidence, stored)
    if evaluation:
        champion = evaluation.get("champion_version") or "none"
        lines += [f"Holdout metrics (champion: {champion}):", *_table(evaluation), ""]
        gate = evaluation.get("gate") or {}
        lines += ["Gate: " + ("passed" if gate.get("passed") else "FAILED")]
        lines += [f"    {r}" for r in gate.get("reasons", [])] + [""]
    lines += [
        f"Changes: {path}",
        "",
        f"Model: {meta.model_name}",
        f"Version: {meta.version}",
        f"Sha256: {meta.sha256}",
    ]
    if trigger_event_id:
        lines.append(f"Trigger-Event: {trigger_event_id}")
    return "\n".join(lines) + "\n"
