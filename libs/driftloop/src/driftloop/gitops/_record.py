"""The promotion commit's message: the "why this model" record a reviewer reads.

Its trailers (``Model:``, ``Version:``, ``Trigger-Event:`` …) are for machines: the sync
service, the end-to-end test and ``git log --grep`` find promotions by them."""

from __future__ import annotations

from typing import Any

from driftloop.models import ModelVersion

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


def commit_message(
    stored: ModelVersion,
    path: str,
    evaluation: dict[str, Any] | None,
    trigger_event_id: str | None,
    reason: str,
    previous_uri: str | None,
) -> str:
    meta = stored.metadata
    window = meta.training_window
    lines = [
        f"Promote {meta.model_name} {meta.version} ({reason})",
        "",
        f"Why: {reason}" + (f"; triggered by event {trigger_event_id}" if trigger_event_id else ""),
        f"Replaces: {previous_uri or 'nothing (first version)'}",
        f"Data window: {window.start.isoformat()} .. {window.end.isoformat()} "
        f"({meta.rows.train} train / {meta.rows.validation} validation / "
        f"{meta.rows.holdout} holdout rows, data {meta.data_hash})",
        f"Features: {meta.feature_service} ({meta.feature_views_hash})",
        f"Trained from: {meta.git_sha}{' (dirty tree)' if meta.git_dirty else ''}",
        f"Lineage: {stored.metadata_uri}",
        "",
    ]
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
