"""The report's shadow part (``--shadow``): the shadow's commit, the monitor's verdict with
its evidence, the commit that promoted or removed the shadow, and the champion against the
shadow on the live labelled payments both scored."""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING, Any

from driftloop_demo._shadow import paired, shadow_windows

if TYPE_CHECKING:
    from driftloop_demo._loop import DemoResult


def policy_line(result: DemoResult) -> str:
    """The shadow section of the monitor.yaml the demo's deployment repository holds."""
    import yaml

    path = result.settings.deploy_dir / "apps" / result.config.model / "monitor.yaml"
    if not path.is_file():
        return "-"
    spec: dict[str, Any] = (yaml.safe_load(path.read_text()) or {}).get("shadow") or {}
    keys = ("min_rows", "min_positives", "step", "alpha", "deadline_hours", "on_deadline")
    shown = ", ".join(f"{k} {spec[k]}" for k in keys if k in spec)
    differences = spec.get("min_difference") or {}
    if differences:
        shown += "; min_difference " + ", ".join(f"{k} {v}" for k, v in differences.items())
    return f"monitor.yaml shadow: {shown} (as shipped: the demo does not change it)"


def summary_lines(result: DemoResult) -> list[str]:
    trail = result.shadow
    if trail is None:
        return []
    lines = [
        f"  shadow          {trail.version or '-'} declared by commit "
        f"{(trail.shadow_commit or '-')[:12]}"
    ]
    event = trail.verdict
    if event is not None and event.shadow is not None:
        v = event.shadow
        figures = "; ".join(
            f"{c.metric} v1 {c.serving:.3f} vs shadow {c.shadow:.3f} "
            f"(p better {c.p_better:.2g}, worse {c.p_worse:.2g})"
            for c in v.comparisons
        )
        lines.append(
            f"  verdict         {v.verdict} → {v.action} on {v.rows} labelled pairs "
            f"({v.positives} fraud): {figures or v.reason}"
        )
    else:
        lines.append("  verdict         - (none published)")
    if trail.verdict_commit:
        lines.append(f"  verdict commit  {trail.outcome} by {trail.verdict_commit[:12]}")
    lines.append(f"  shadow policy   {policy_line(result)}")
    return lines


def plot(result: DemoResult, out: Path) -> Path | None:
    """Champion and shadow per window of labelled pairs (solid) and over every pair so
    far (dashed), PR-AUC above and recall at each version's threshold below."""
    trail = result.shadow
    if trail is None or trail.version is None or result.scores is None:
        return None
    windows = shadow_windows(paired(result.scores, trail.version), result.config.shadow_window)
    if windows.empty:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 1, figsize=(7.5, 6), sharex=True)
    sides = (("serving", "v1 (champion, answering)", "tab:blue"),
             ("shadow", "v2 (shadow)", "tab:orange"))  # fmt: skip
    panels = (("pr_auc", "PR-AUC"), ("recall", "recall at threshold"))
    for ax, (metric, name) in zip(axes, panels, strict=True):
        for side, label, colour in sides:
            ax.plot(windows["pairs"], windows[f"{metric}_{side}"], "o-", color=colour,
                    label=f"{label}, per {result.config.shadow_window} pairs")  # fmt: skip
            ax.plot(windows["pairs"], windows[f"{metric}_{side}_so_far"], "--", color=colour,
                    alpha=0.7, label=f"{label}, all pairs so far")  # fmt: skip
        if trail.verdict is not None and trail.verdict.shadow is not None:
            ax.axvline(trail.verdict.shadow.rows, color="grey", linestyle=":")
        ax.set_ylabel(name)
        ax.set_ylim(0, 1.02)
    verdict = trail.verdict.shadow if trail.verdict is not None else None
    axes[0].set_title(
        "champion vs shadow on live labelled payments"
        + (f" (dotted: verdict '{verdict.verdict}' at {verdict.rows} pairs)" if verdict else ""),
        fontsize=10,
    )
    axes[0].legend(fontsize=7)
    axes[1].set_xlabel(
        f"labelled payments scored by both ({int(windows['positives'].sum())} fraud "
        f"among {int(windows['rows'].sum())})"
    )
    fig.tight_layout()
    path = out / "shadow-v1-v2.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def section(result: DemoResult, image: Path | None) -> str:
    """The report's HTML for the shadow: commits, verdict, plot."""
    trail = result.shadow
    if trail is None:
        return ""
    parts = [
        "<h2>the shadow commit (the run's challenger, scored beside v1)</h2>"
        f"<pre>{html.escape(trail.shadow_message or '(no shadow commit)')}</pre>"
    ]
    event = trail.verdict
    if event is not None and event.shadow is not None:
        v = event.shadow
        rows = "".join(
            f"<tr><td>{html.escape(c.metric)}</td><td>{c.serving:.4f}</td>"
            f"<td>{c.shadow:.4f}</td><td>{c.standard_error:.4f}</td>"
            f"<td>{c.p_better:.3g}</td><td>{c.p_worse:.3g}</td></tr>"
            for c in v.comparisons
        )
        parts.append(
            "<h2>the monitor's shadow verdict (drift event "
            f"{html.escape(event.event_id)})</h2>"
            f"<p><b>{v.verdict}</b> → {v.action}: {html.escape(v.reason)}; "
            f"{v.rows} labelled payments scored by both, {v.positives} fraud; shadow first "
            f"seen {v.first_seen:%Y-%m-%d %H:%M:%S} (event time), deadline "
            f"{v.deadline:%Y-%m-%d %H:%M:%S}</p>"
            "<table><tr><th>metric</th><th>v1 (serving)</th><th>v2 (shadow)</th>"
            "<th>std. error</th><th>p better</th><th>p worse</th></tr>"
            f"{rows}</table><p>{html.escape(policy_line(result))}</p>"
        )
    else:
        parts.append("<h2>the monitor's shadow verdict</h2><p>none published</p>")
    what = {"promoted": "promotion", "removed": "removal"}.get(trail.outcome or "", "verdict")
    parts.append(
        f"<h2>the {what} commit (the record of the live verdict)</h2>"
        f"<pre>{html.escape(trail.verdict_message or '(no commit)')}</pre>"
    )
    if image is not None:
        title = "champion against shadow on live labelled traffic"
        parts.append(f"<h2>{title}</h2><img src='{image.name}' alt='{title}'>")
    return "".join(parts)
