"""Print ``bench/results/latest.json`` as one table: each benchmark's ratios against the
baseline measured in its own run, and the loop's absolute latency (`make bench` ends here)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import RESULTS

SHOWN = ("ratio_", "phase_", "_ratio_", "post_drift_", "_overhead_")


def rows(data: dict[str, dict[str, object]]) -> list[tuple[str, str, str, str]]:
    out = []
    for bench, result in sorted(data.items()):
        when = str(result.get("measured_at", ""))
        for key, value in sorted(result.items()):
            if not any(marker in key for marker in SHOWN) or not isinstance(value, int | float):
                continue
            seconds = key.startswith("phase_") or "_overhead_" in key
            unit = "s" if seconds else ("" if "auc" in key else "x")
            out.append((bench, key, f"{value:.3g}{unit}", when))
    return out


def main() -> None:
    if not RESULTS.exists():
        sys.exit(f"{RESULTS} not found: run `make bench`")
    table = rows(json.loads(RESULTS.read_text()))
    widths = [max(len(r[i]) for r in table) for i in range(4)]
    for bench, key, value, when in table:
        print(f"{bench:<{widths[0]}}  {key:<{widths[1]}}  {value:>{widths[2]}}  {when}")


if __name__ == "__main__":
    main()
