"""The loop's latency: from the drift's onset to v2 serving, and how it splits across
detection, trigger, dataset, training, gate, register, promotion and sync — measured on the
demo's loop (the same code `make demo` runs) in its own state directory and topics. An
absolute figure with its phases; its only baseline is the loop itself."""

from __future__ import annotations

import sys
import tempfile
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from driftloop_demo import DemoConfig, phases, run_demo, tear_down

from bench._common import record
from driftloop.settings import Settings


def main() -> None:
    base = Settings(topic_prefix=f"bench-loop-{uuid.uuid4().hex[:6]}.")
    root = Path(tempfile.mkdtemp(prefix="bench-loop-")) / "demo"
    config = DemoConfig(default_ports=False, after_v2_s=20)
    try:
        result = run_demo(base, config, root, echo=lambda line: None)
    finally:
        tear_down(base)
    out: dict[str, object] = {"scenario": config.scenario, "closed": result.v2 is not None}
    out.update({f"phase_{k.replace(' ', '_')}_s": v for k, v in phases(result).items()})
    out["runs"] = len(result.runs)
    out["drift_events"] = len(result.events)
    if result.comparison is not None:
        out["post_drift_pr_auc_v1"] = result.comparison.pr_auc.get("v1")
        out["post_drift_pr_auc_v2"] = result.comparison.pr_auc.get("v2")
    record("loop", out)


if __name__ == "__main__":
    main()
