"""``driftloop drift report``: drift per column over time (PNG) and each event's evidence
(HTML, with the PNG inside), from the window records the monitor kept."""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from pathlib import Path

from driftloop.drift._audit import AuditStore, WindowRecord

_PERF = ("roc_auc", "pr_auc", "recall_at_threshold")


def _plot(records: Sequence[WindowRecord], model: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = [r for r in records if r.kind == "data" and r.columns]
    perf = [r for r in records if r.kind == "performance" and r.metrics]
    columns = sorted({c.column for r in data for c in r.columns})
    panels = len(columns) + (1 if perf else 0)
    ncols = 3 if panels > 4 else max(1, panels)
    nrows = max(1, -(-panels // ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(5 * ncols, 2.6 * nrows), squeeze=False)
    flat = [ax for row in axes for ax in row]
    events = [r.end for r in records if r.event_id]
    for ax, name in zip(flat, columns, strict=False):
        points = [(r.end, c) for r in data for c in r.columns if c.column == name]
        xs = [t for t, _ in points]
        ax.plot(xs, [c.effect for _, c in points], ".-", lw=0.8, ms=3, color="tab:blue")
        hot = [(t, c.effect) for t, c in points if c.category == "DRIFT"]
        if hot:
            ax.plot(*zip(*hot, strict=True), "o", ms=4, color="tab:red", label="drift")
        ax.axhline(points[0][1].min_effect, color="grey", ls="--", lw=0.8)
        for t in events:
            ax.axvline(t, color="tab:red", alpha=0.25, lw=0.8)
        measure = "TVD" if points[0][1].algorithm == "chi-square" else "statistic"
        ax.set_title(f"{name} ({points[0][1].algorithm}: {measure})", fontsize=9)
        ax.tick_params(labelsize=7)
    if perf:
        ax = flat[len(columns)]
        for metric in _PERF:
            ys = [r.metrics.get(metric) for r in perf]
            ax.plot([r.end for r in perf], ys, ".-", lw=0.8, ms=3, label=metric)
        ax.set_title("performance from labels", fontsize=9)
        ax.legend(fontsize=6)
        ax.tick_params(labelsize=7)
    for ax in flat[panels:]:
        ax.set_visible(False)
    fig.suptitle(f"drift of {model} per window (red: drifted column; bands: events)")
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _fmt(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return html.escape(str(value))


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _evidence(record: WindowRecord, store: AuditStore) -> str:
    title = (
        f"{record.kind} event {record.event_id}: {record.version}, "
        f"{record.start:%Y-%m-%d %H:%M:%S} .. {record.end:%Y-%m-%d %H:%M:%S} UTC, "
        f"{record.row_count} rows, verdict {record.verdict}, streak {record.streak}"
    )
    parts = [f"<h3>{html.escape(title)}</h3>"]
    if record.reference_profile:
        parts.append(f"<p>reference profile: <code>{html.escape(record.reference_profile)}</code>")
    if record.kind == "data":
        parts.append(f"<p>window profile: <code>{html.escape(str(store.profile_path(record)))}")
        parts.append("</code></p>")
        shown = sorted(record.columns, key=lambda c: (c.category != "DRIFT", -c.effect))
        parts.append(_table(
            ["column", "algorithm", "statistic", "p", "p adjusted", "effect", "min effect",
             "category", "window", "reference", "tested against"],
            [[c.column, c.algorithm, c.statistic, c.p_value, c.p_adjusted, c.effect,
              c.min_effect, c.category, _summary(c.window), _summary(c.reference),
              c.basis or "training reference"]
             for c in shown],
        ))  # fmt: skip
    if record.skew is not None:
        parts.append(_skew(record))
    if record.metrics:
        parts.append(_table(["metric", "value"], sorted(record.metrics.items())))
    bad = {col: q for col, q in record.quality.items() if any(q.values())}
    if bad:
        kinds = sorted({k for q in bad.values() for k in q})
        parts.append("<p>values counted, not profiled:</p>")
        parts.append(_table(["column", *kinds], [[c, *(q.get(k, 0) for k in kinds)]
                                                  for c, q in sorted(bad.items())]))  # fmt: skip
    return "\n".join(parts)


def _skew(record: WindowRecord) -> str:
    """A window's skew figures: served features against offline point-in-time ones."""
    skew = record.skew
    if skew is None:
        return ""
    head = (
        f"<p>training-serving skew of {record.version}, window ending "
        f"{record.end:%Y-%m-%d %H:%M:%S}: {skew.compared} of {skew.sampled} sampled rows "
        f"compared, tolerance {skew.tolerance:g}, skewed above {skew.max_share:.0%} of rows "
        f"differing: {html.escape(', '.join(skew.skewed) or 'none')}"
        + (f" ({html.escape(skew.error)})" if skew.error else "")
        + "</p>"
    )
    shown = sorted(skew.columns, key=lambda c: (not c.skewed, -c.differing, c.column))
    return head + _table(
        ["feature", "rows", "served mean", "offline mean", "served - offline",
         "share differing", "served missing", "offline missing", "skewed"],
        [[c.column, c.rows, c.served_mean, c.offline_mean, c.mean_diff, c.differing,
          c.served_missing, c.offline_missing, "SKEW" if c.skewed else ""]
         for c in shown],
    )  # fmt: skip


def skew_section(records: Sequence[WindowRecord]) -> str:
    """Every window's skew check in a line, then the figures of the windows with a skewed
    feature (or, when none is, of the latest window checked)."""
    checked = [r for r in records if r.skew is not None]
    if not checked:
        return "<p>no skew checks (monitor.yaml: skew.enabled)</p>"
    lines = _table(
        ["window end", "version", "compared", "skewed features"],
        [[f"{r.end:%Y-%m-%d %H:%M:%S}", r.version, r.skew.compared if r.skew else 0,
          ", ".join(r.skew.skewed) if r.skew else ""] for r in checked],
    )  # fmt: skip
    detail = [r for r in checked if r.skew is not None and r.skew.skewed] or checked[-1:]
    return lines + "\n".join(_skew(r) for r in detail)


def _summary(summary: dict[str, float | str | None]) -> str:
    return ", ".join(f"{k}={_fmt(v)}" for k, v in summary.items())


_UNCOUNTED = ("settling", "adopted")
"""Bases of a column tested but not counted towards the window's verdict."""


def write_report(store: AuditStore, model: str, out_dir: Path) -> tuple[Path, Path]:
    """Write ``<out_dir>/drift-<model>.png`` and ``.html``; return their paths."""
    records = store.records()
    if not records:
        raise FileNotFoundError(f"no window records for {model!r} under {store.dir}")
    out_dir.mkdir(parents=True, exist_ok=True)
    png, page = out_dir / f"drift-{model}.png", out_dir / f"drift-{model}.html"
    _plot(records, model, png)
    image = base64.b64encode(png.read_bytes()).decode()
    events = [r for r in records if r.event_id]
    overview = _table(
        ["window end", "kind", "version", "rows", "verdict", "drifted columns",
         "skewed features", "event"],
        [[f"{r.end:%Y-%m-%d %H:%M:%S}", r.kind, r.version, r.row_count, r.verdict,
          ", ".join(c.column + (" (settling)" if c.basis in _UNCOUNTED else "")
                    for c in r.columns if c.category == "DRIFT"),
          ", ".join(r.skew.skewed) if r.skew else "", r.event_id]
         for r in records],
    )  # fmt: skip
    body = "\n".join(_evidence(r, store) for r in events) or "<p>no events</p>"
    page.write_text(
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>drift report: {html.escape(model)}</title>"
        "<style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse;"
        "font-size:12px;margin:0.5em 0}td,th{border:1px solid #ccc;padding:2px 6px}</style>"
        f"</head><body><h1>drift report: {html.escape(model)}</h1>"
        f"<p>{len(records)} windows, {len(events)} events</p>"
        f"<img alt='drift per column over time' src='data:image/png;base64,{image}'>"
        f"<h2>events and their evidence</h2>{body}"
        f"<h2>training-serving skew</h2>{skew_section(records)}"
        f"<h2>all windows</h2>{overview}"
        "</body></html>"
    )
    return png, page
