"""The report a person reads after the demo: a terminal summary, and an HTML page with
PNG plots — drift per window, score distributions before and after, v1 against v2 on
post-drift labelled data, and the loop's timeline."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from driftloop.apikey import key_source
from driftloop.settings import Settings
from driftloop_demo import _shadow_report
from driftloop_demo._evidence import answers
from driftloop_demo._loop import DemoResult, failure_reasons

# (mark, label) in the order the loop passes them
TIMELINE = (
    ("traffic", "traffic starts (v1 serving)"),
    ("onset", "drift onset"),
    ("detected", "drift event published"),
    ("run_submitted", "retraining run submitted"),
    ("step:build-dataset:start", "build-dataset"),
    ("step:train:start", "train"),
    ("step:evaluate:start", "evaluate (gate)"),
    ("step:register:start", "register"),
    ("step:promote:start", "promote"),
    ("shadow_committed", "v2 committed as shadow on main"),
    ("shadow_synced", "sync applied it: v2 scored in shadow"),
    ("shadow_verdict", "the monitor's shadow verdict published"),
    ("removed", "shadow removal commit on main"),
    ("promoted", "promotion commit on main"),
    ("synced", "sync applied the commit"),
    ("v2_serving", "v2 serving"),
)
PHASES = (
    ("detection", "onset", "detected"),
    ("trigger", "detected", "run_submitted"),
    ("dataset", "step:build-dataset:start", "step:train:start"),
    ("training", "step:train:start", "step:evaluate:start"),
    ("gate", "step:evaluate:start", "step:register:start"),
    ("register", "step:register:start", "step:promote:start"),
    ("promotion", "step:promote:start", "promoted"),
    ("sync", "promoted", "v2_serving"),
)


SHADOW_PHASES = (
    ("shadow commit", "step:promote:start", "shadow_committed"),
    ("shadow sync", "shadow_committed", "shadow_synced"),
    ("live judgement", "shadow_synced", "shadow_verdict"),
    ("verdict commit", "shadow_verdict", "promoted"),
    ("removal commit", "shadow_verdict", "removed"),
)


def phases(result: DemoResult) -> dict[str, float | None]:
    chosen: tuple[tuple[str, str, str], ...] = PHASES
    if result.shadow is not None:  # the promote step commits a shadow, the verdict the rest
        chosen = PHASES[:-2] + SHADOW_PHASES + (("sync", "promoted", "v2_serving"),)
    out = {name: result.seconds(a, b) for name, a, b in chosen}
    out["onset → v2 serving"] = result.seconds("onset", "v2_serving")
    return out


def _headline(result: DemoResult) -> str:
    if result.closed and not result.v2:
        return "the loop closed: the shadow was judged worse live and removed, v1 serves"
    if not result.v2:
        return f"NOT closed: {result.failure}"
    if result.healing is None:
        return "the loop closed (healing not judged: no labelled post-drift rows)"
    return "the loop closed and healed" if result.healing.healed else "the loop closed, NOT healed"


def summary_lines(result: DemoResult) -> list[str]:
    s, c = result.settings, result.counts
    lines = [
        "",
        "driftloop demo — " + _headline(result),
        f"  scenario        {result.config.scenario} (strength {result.config.strength:g})",
        f"  v1              {result.v1}",
        f"  v2              {result.v2 or '-'}",
        f"  drift events    {len(result.events)} "
        + ", ".join(sorted({e.kind for e in result.events})),
        f"  retraining runs {len(result.runs)} "
        + ", ".join(f"{r.run_id} ({r.status})" for r in result.runs),
        f"  promotion       {result.promotion_commit or '-'} in {s.git_repo}",
        f"  counts          sent {c.sent}, answered {c.predicted_ok} (failed "
        f"{c.predicted_failed}{failure_reasons(c)}), feature rows {c.feature_rows}, "
        f"predictions logged {c.predictions_logged} ({c.predictions_distinct} distinct), "
        f"windowed by the monitor {c.rows_windowed}",
    ]
    lines += _shadow_report.summary_lines(result)
    for fault in result.faults:
        down = f"{fault.down_s:.1f} s" if fault.down_s is not None else "not back"
        lines.append(
            f"  SIGKILL         {fault.name} (pid {fault.pid}) at {fault.killed_at:%H:%M:%S}: "
            f"{fault.detail or '-'}, {down}"
        )
    if result.comparison is not None:
        cmp = result.comparison
        lines.append(
            f"  post-drift      {cmp.rows} labelled rows ({cmp.positives} fraud): PR-AUC "
            f"v1 {cmp.pr_auc.get('v1', float('nan')):.3f} vs v2 "
            f"{cmp.pr_auc.get('v2', float('nan')):.3f}; recall at threshold "
            f"v1 {cmp.recall.get('v1', float('nan')):.2f} vs v2 "
            f"{cmp.recall.get('v2', float('nan')):.2f}"
        )
    if result.healing is not None:
        lines.append(f"  healing         {result.healing.line()}")
    if result.skew:
        lines.append(f"  skew            {result.skew}")
    if result.alerts is None:
        lines.append("  alerts          - (no Prometheus on the stack)")
    else:
        lines.append(
            "  alerts          "
            + ("; ".join(span.line() for span in result.alerts) or "none fired")
            + " (Prometheus, deploy/local/prometheus/alerts.yml)"
        )
    lines.append(
        "  onset → v2     "
        + ", ".join(f"{k} {v:.0f} s" for k, v in phases(result).items() if v is not None)
    )
    lines += [
        f"  report          {result.report or '-'}",
        f"  look closer     source {result.environment or '-'}; then driftloop runs, "
        "driftloop drift report, driftloop sync status read this run",
        f"  Ray dashboard   {s.dashboard_url}",
        f"  Serve endpoint  {s.serve_url}/{result.config.model}/predict "
        f"(model: {s.serve_url}/{result.config.model}/model; {_key_hint(s)})",
        "  stop everything with: make down",
    ]
    return lines


def _key_hint(settings: Settings) -> str:
    if settings.serve_auth == "off":
        return "no API key: auth is off"
    source = key_source(settings)
    return f"X-API-Key: {source}" if source.startswith("$") else f"X-API-Key: $(cat {source})"


def _plots(result: DemoResult, out: Path) -> dict[str, Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    paths: dict[str, Path] = {}
    frame = answers(result.scores) if result.scores is not None else None  # no shadow scores
    onset = pd.Timestamp(result.virtual_onset) if result.virtual_onset else None
    if frame is not None and len(frame) and onset is not None:
        fig, ax = plt.subplots(figsize=(7, 3.5))
        groups = {
            "v1 before the onset": frame[
                (frame["scored_at"] < onset) & (frame["model_version"] == result.v1)
            ],
            "v1 after the onset": frame[
                (frame["scored_at"] >= onset) & (frame["model_version"] == result.v1)
            ],
            "v2": frame[frame["model_version"] == result.v2] if result.v2 else frame.iloc[:0],
        }
        for label, rows in groups.items():
            if len(rows):
                ax.hist(
                    rows["score"],
                    bins=40,
                    range=(0, 1),
                    histtype="step",
                    density=True,
                    log=True,
                    label=f"{label} ({len(rows)})",
                )
        ax.set_xlabel("score (P(fraud))")
        ax.set_ylabel("density (log)")
        ax.set_title("score distribution before and after")
        ax.legend(fontsize=8)
        fig.tight_layout()
        paths["scores"] = out / "scores.png"
        fig.savefig(paths["scores"], dpi=110)
        plt.close(fig)
    if result.comparison is not None and result.comparison.curves:
        cmp = result.comparison
        fig, ax = plt.subplots(figsize=(5, 4))
        for label, (recall, precision) in cmp.curves.items():
            ax.plot(recall, precision, label=f"{label} PR-AUC {cmp.pr_auc[label]:.3f}")
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.set_title(f"post-drift labelled rows ({cmp.rows}, {cmp.positives} fraud)")
        ax.legend()
        fig.tight_layout()
        paths["pr"] = out / "pr-v1-v2.png"
        fig.savefig(paths["pr"], dpi=110)
        plt.close(fig)
    marks = [(label, result.marks[key]) for key, label in TIMELINE if key in result.marks]
    if marks:
        start = marks[0][1]
        fig, ax = plt.subplots(figsize=(8, 0.4 * len(marks) + 1))
        xs = [(t - start).total_seconds() for _, t in marks]
        ax.barh(range(len(marks)), xs, color="tab:blue", alpha=0.35)
        for i, x in enumerate(xs):
            ax.text(x, i, f" {x:.0f} s", va="center", fontsize=8)
        ax.set_yticks(range(len(marks)), [label for label, _ in marks], fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel("seconds since the traffic started")
        ax.set_title("timeline")
        fig.tight_layout()
        paths["timeline"] = out / "timeline.png"
        fig.savefig(paths["timeline"], dpi=110)
        plt.close(fig)
    return paths


def write_report(result: DemoResult, out: Path) -> Path:
    """``out/index.html`` with the plots beside it (and the monitor's drift report)."""
    from driftloop.drift import AuditStore
    from driftloop.drift import write_report as drift_report

    out.mkdir(parents=True, exist_ok=True)
    images = _plots(result, out)
    shadow = _shadow_report.section(result, _shadow_report.plot(result, out))
    audit = AuditStore(result.settings.state_dir / "monitor", result.config.model)
    drift_png: Path | None = None
    if audit.records():
        drift_png, _ = drift_report(audit, result.config.model, out)
    rows: list[tuple[str, Any]] = [
        (line[:16].strip(), line[16:].strip()) for line in summary_lines(result)[2:]
    ]
    table = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows if k
    )
    figures = [
        ("drift statistic per column and window (red: drifted; vertical lines: events)", drift_png),
        ("score distribution before and after", images.get("scores")),
        ("v1 against v2 on post-drift labelled rows", images.get("pr")),
        (
            "timeline: onset, detection, trigger, training, promotion, serving",
            images.get("timeline"),
        ),
    ]
    body = "".join(
        f"<h2>{html.escape(title)}</h2><img src='{path.name}' alt='{html.escape(title)}'>"
        for title, path in figures
        if path is not None
    )
    message = html.escape(result.promotion_message or "(no promotion)")
    promotion = (
        shadow
        if result.shadow is not None
        else f"<h2>the promotion commit (the record of why v2 serves)</h2><pre>{message}</pre>"
    )
    page = out / "index.html"
    page.write_text(
        "<!doctype html><html><head><meta charset='utf-8'><title>driftloop demo</title>"
        "<style>body{font-family:sans-serif;margin:1.5em;max-width:70em}th{text-align:left;"
        "padding-right:1em;vertical-align:top}img{max-width:100%}pre{background:#f4f4f4;"
        "padding:0.8em}</style></head><body><h1>driftloop demo</h1>"
        f"<table>{table}</table>{body}"
        f"{promotion}<p>drift evidence per event: <a href='drift-{result.config.model}.html'>"
        "drift report</a></p></body></html>"
    )
    return page
