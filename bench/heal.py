"""Does the loop heal? The demo's loop (the code `make demo` runs) for several seeds on each
learnable scenario, one table row per run:

- v1 before the drift: PR-AUC and recall at its threshold on its own holdout (offline
  point-in-time features), and live (``v1_live_*``: the labelled traffic it scored before
  the onset, with the features it was served — v2's footing; ``healed_live`` judges v2
  against these);
- v1 and v2 after the drift, on the same labelled post-drift rows (v2 not trained on them);
- onset → v2 serving, by phase;
- drift events before the onset (false starts) and about v2 in the windows after it serves;
- v2 after the drift once more on the offline point-in-time features of the same payments,
  and the share of rows (all, fraud) served with features that differ from those: a
  training-serving skew shows as a gap between the two footings.

Goals (issue "Retraining that heals"): v2 post-drift PR-AUC ≥ 0.85 x v1 pre-drift PR-AUC
and recall ≥ 0.8 x v1's in at least 4 of 5 seeds per scenario; 0 events before the onset;
≤ 1 event in the 20 windows after v2 serves; onset → v2 ≤ 8 min.

Each run takes 10-20 minutes on two cores (the 20 windows after v2 are about 8 of them):
`--seeds 1 --windows-after 4` is a quick look. Needs the stack (`make up`). Each run's
directory is kept (its path is in the row); `--footing DIR` recomputes the two footings of
a kept run without running anything.

    .venv/bin/python bench/heal.py --scenarios crypto-cash-out,gift-card-fraud --seeds 5
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from driftloop_demo import DemoConfig, DemoResult, phases, run_demo, tear_down
from driftloop_demo._evidence import PR_AUC_SHARE, RECALL_SHARE

from bench._common import RESULTS, record
from bench._footing import offline_footing
from driftloop.settings import Settings

LEARNABLE = ("crypto-cash-out", "gift-card-fraud", "online-takeover")
"""Scenarios in which v1 loses recall and a model retrained on the new traffic can regain
it (services/simulator/scenarios.yaml)."""


def row(scenario: str, seed: int, result: DemoResult) -> dict[str, Any]:
    out: dict[str, Any] = {"scenario": scenario, "seed": seed, "closed": result.v2 is not None}
    out["v1_pre_pr_auc"] = result.v1_metrics.get("pr_auc")
    out["v1_pre_recall"] = result.v1_metrics.get("recall_at_threshold")
    if result.comparison is not None:
        c = result.comparison
        out |= {"post_rows": c.rows, "post_positives": c.positives}
        out |= {"v1_post_pr_auc": c.pr_auc.get("v1"), "v2_post_pr_auc": c.pr_auc.get("v2")}
        out |= {"v1_post_recall": c.recall.get("v1"), "v2_post_recall": c.recall.get("v2")}
    if result.healing is not None:
        h = result.healing
        out |= {"pr_auc_share": h.pr_auc_share, "recall_share": h.recall_share}
        out |= {"healed": h.healed, "windows_after_v2": h.windows_after_v2}
        out["events_after_v2"] = h.events_after_v2
        if h.v1_live is not None:  # v1 on served features before the drift: v2's footing
            live = h.v1_live
            out |= {"v1_live_pr_auc": live.pr_auc, "v1_live_recall": live.recall}
            out["live_pr_auc_share"] = h.v2_pr_auc / live.pr_auc if live.pr_auc else None
            out["live_recall_share"] = h.v2_recall / live.recall if live.recall else None
            out["healed_live"] = (out["live_pr_auc_share"] or 0) >= PR_AUC_SHARE and (
                out["live_recall_share"] or 0
            ) >= RECALL_SHARE
    onset = result.virtual_onset
    out["events_before_onset"] = (
        sum(1 for e in result.events if onset is not None and e.window.end < onset)
        if onset is not None
        else None
    )
    out["runs"] = len(result.runs)
    out |= {f"{k.replace(' ', '_')}_s": v for k, v in phases(result).items()}
    out["failure"] = result.failure
    return out


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.0f}"
    return "-" if value is None else str(value)


def table(rows: list[dict[str, Any]]) -> str:
    columns = [
        "scenario", "seed", "v1_pre_pr_auc", "v1_pre_recall", "v1_post_pr_auc",
        "v2_post_pr_auc", "v1_post_recall", "v2_post_recall", "healed", "v1_live_pr_auc",
        "v1_live_recall", "healed_live",
        "events_before_onset", "events_after_v2", "windows_after_v2", "onset_→_v2_serving_s",
        "v2_offline_pr_auc", "v2_offline_recall", "skewed_rows_share", "skewed_fraud_share",
    ]  # fmt: skip
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def footing(result: DemoResult) -> dict[str, Any]:
    """v2's post-drift figures on both footings (see bench/_footing.py); a failure to
    compute them is reported in the row, never loses it."""
    if result.v2 is None or result.comparison is None or result.scores is None:
        return {}
    try:
        return offline_footing(
            result.settings, result.scores, result.config.model, result.v2,
            result.comparison.since,
        )  # fmt: skip
    except Exception as exc:  # a post-mortem column: the run's own figures stand
        return {"footing_failure": f"{type(exc).__name__}: {exc}"}


def kept(root: Path) -> dict[str, Any]:
    """Both footings of a kept run directory: its settings from its ``driftloop.env``, the
    version serving at the end as v2, its rows from the end of v2's training window."""
    import pandas as pd

    from driftloop.models import ModelStore

    for line in (root / "driftloop.env").read_text().splitlines():
        if line.startswith("export "):
            key, _, value = line.removeprefix("export ").partition("=")
            os.environ[key] = value
    settings = Settings()
    scores = pd.read_parquet(root / "scores.parquet").sort_values("scored_at")
    model = DemoConfig().model
    v2 = str(scores["model_version"].iloc[-1])
    since = ModelStore.from_settings(settings).get(model, v2).metadata.training_window.end
    return {"root": str(root), "v2": v2} | offline_footing(settings, scores, model, v2, since)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenarios", default=",".join(LEARNABLE))
    parser.add_argument("--seeds", type=int, default=5, help="seeds 1..N per scenario")
    parser.add_argument("--first-seed", type=int, default=1, help="start there: seeds F..F+N-1")
    parser.add_argument("--windows-after", type=int, default=20, help="monitor windows of v2")
    defaults = DemoConfig()
    parser.add_argument("--retrain-days", type=float, default=defaults.retrain_days)
    parser.add_argument("--evidence-rows", type=int, default=defaults.evidence_rows)
    parser.add_argument("--evidence-positives", type=int, default=defaults.evidence_positives)
    parser.add_argument("--footing", type=Path, metavar="DIR",
                        help="only recompute both footings of a kept run directory")  # fmt: skip
    args = parser.parse_args()
    if args.footing:
        print(json.dumps(kept(args.footing), default=str))
        return
    policy = {
        "retrain_days": args.retrain_days,
        "evidence_rows": args.evidence_rows,
        "evidence_positives": args.evidence_positives,
    }
    print(f"demo policy: {policy}", flush=True)
    rows = []
    for scenario in args.scenarios.split(","):
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            base = Settings(topic_prefix=f"bench-heal-{uuid.uuid4().hex[:6]}.")
            root = Path(tempfile.mkdtemp(prefix="bench-heal-")) / "demo"
            config = DemoConfig(default_ports=False, scenario=scenario, seed=seed, **policy)
            after = args.windows_after * config.window_rows / config.rate
            config = config.model_copy(update={"after_v2_s": after, "timeout_s": 900 + after})
            try:
                result = run_demo(base, config, root, echo=lambda line: None)
            finally:
                tear_down(base)
            if result.scores is not None and len(result.scores):
                # every logged prediction with its served features and label, for a post-mortem
                scores = result.scores.astype({"scored_at": "datetime64[ns, UTC]"})
                scores.to_parquet(root / "scores.parquet")
            rows.append(row(scenario, seed, result) | footing(result) | {"root": str(root)})
            print(table(rows[-1:]).splitlines()[-1], flush=True)
    print("\n" + table(rows))
    goals: dict[str, Any] = {}
    for scenario in args.scenarios.split(","):
        mine = [r for r in rows if r["scenario"] == scenario]
        goals[f"{scenario}_healed"] = f"{sum(bool(r.get('healed')) for r in mine)}/{len(mine)}"
        live = sum(bool(r.get("healed_live")) for r in mine)
        goals[f"{scenario}_healed_live"] = f"{live}/{len(mine)}"
    record(
        "heal",
        {
            **goals,
            "goal": f"PR-AUC share >= {PR_AUC_SHARE}, recall share >= {RECALL_SHARE}",
            "policy": json.dumps(policy),
            "rows": json.dumps(rows, default=str),
        },
    )
    print(f"rows in {RESULTS}")


if __name__ == "__main__":
    main()
