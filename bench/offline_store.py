"""Feast's Ray offline store against its file (dask) store for building a training set:
the point-in-time join of driftloop's `fraud_v1` service for about 20 k and 1 M labelled
rows, in the same run, on the same history and feature files.

Each case runs in its own process with a time limit; a case that does not finish, or
dies, is reported as such and the larger sizes of that store are then skipped. Each case
also reports its peak resident memory. Asked in one query, the file store's 1 M-row join
was killed by the kernel at 21.9 GB resident on this 24 GB machine; ``point_in_time`` now
asks Feast in chunks of event-time ordered rows, which bounds that.

    python bench/offline_store.py [--sizes 20000,1000000] [--limit-s 600]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd

from bench._common import record
from driftloop.features import (
    SCHEMAS,
    apply_repo,
    customer_aggregates,
    merchant_stats,
    open_store,
    point_in_time,
    training_entities,
    write_batch,
)
from driftloop.settings import Settings

END = datetime(2026, 6, 1, tzinfo=UTC)
STORES = {"file": "local", "ray": "local-ray"}


def _settings(root: Path, env: str) -> Settings:
    return Settings(
        state_dir=root / env / "state", feature_env=env,
        feature_data_uri=str(root / "features"),
    )  # fmt: skip


def prepare(root: Path, rows: int) -> int:
    """History with at least ``rows`` labelled transactions, and its feature files."""
    days = 32
    per_day = max(rows * 1.15 / days, 2000)
    cli = Path(sys.executable).parent / "driftloop-simulator"
    subprocess.run(
        [str(cli), "backfill", "--days", str(days), "--tx-per-day", str(int(per_day)),
         "--end", END.strftime("%Y-%m-%d"), "--out", str(root / "data")],
        check=True, capture_output=True,
    )  # fmt: skip
    history = pd.read_parquet(root / "data" / "transactions.parquet")
    for name, frame in {
        "customer_aggregates": customer_aggregates(history, END),
        "merchant_stats": merchant_stats(history, END),
    }.items():
        write_batch(frame, f"{root / 'features'}/{name}", "backfill", SCHEMAS[name])
    for env in STORES.values():
        apply_repo(_settings(root, env))
    return int(history["label_timestamp"].notna().sum())


def case(root: Path, env: str, rows: int) -> dict[str, float]:
    """One timed point-in-time join (run in a child process)."""
    settings = _settings(root, env)
    history = pd.read_parquet(root / "data" / "transactions.parquet")
    labelled = history[history["label_timestamp"].notna()].tail(rows)
    store = open_store(settings)
    service = store.get_feature_service("fraud_v1")
    served = {f.name for p in service.feature_view_projections for f in p.features}
    entities = training_entities(labelled.drop(columns=sorted(served & set(labelled.columns))))
    started = time.perf_counter()
    joined = point_in_time(store, entities, service)
    took = time.perf_counter() - started
    found = float(joined["txn_count_7d"].notna().mean())
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # KiB on Linux
    return {"seconds": took, "rows_out": float(len(joined)), "with_history_share": found,
            "peak_rss_gb": peak_gb}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="20000,1000000")
    parser.add_argument("--limit-s", type=float, default=600)
    parser.add_argument("--case", nargs=3, metavar=("ROOT", "ENV", "ROWS"))
    args = parser.parse_args()
    if args.case:
        root, env, rows = args.case
        print(json.dumps(case(Path(root), env, int(rows))))
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    root = Path(tempfile.mkdtemp(prefix="bench-offline-"))
    started = time.perf_counter()
    labelled = prepare(root, max(sizes))
    result: dict[str, object] = {"labelled_rows_available": labelled,
                                 "prepare_s": time.perf_counter() - started}  # fmt: skip
    for name, env in STORES.items():
        gave_up = False
        for rows in sizes:
            key = f"{name}_{rows // 1000}k"
            if gave_up:
                result[f"{key}_s"] = "skipped: the smaller size did not finish"
                continue
            command = [sys.executable, __file__, "--case", str(root), env, str(rows)]
            try:
                done = subprocess.run(command, capture_output=True, text=True,
                                      timeout=args.limit_s, check=True)  # fmt: skip
            except subprocess.TimeoutExpired:
                result[f"{key}_s"] = f"did not finish within {args.limit_s:.0f} s"
                gave_up = True
                continue
            except subprocess.CalledProcessError as exc:
                code = exc.returncode
                how = f"killed by signal {-code} (out of memory?)" if code < 0 else f"exit {code}"
                result[f"{key}_s"] = how
                print(f"{key}: {how}: {(exc.stderr or '')[-500:]}", flush=True)
                gave_up = True
                continue
            measured = json.loads(done.stdout.strip().splitlines()[-1])
            result[f"{key}_s"] = measured["seconds"]
            result[f"{key}_rows_out"] = measured["rows_out"]
            result[f"{key}_peak_rss_gb"] = measured["peak_rss_gb"]
            print(f"{key}: {measured}", flush=True)
    for rows in sizes:
        file_s, ray_s = result.get(f"file_{rows // 1000}k_s"), result.get(f"ray_{rows // 1000}k_s")
        if isinstance(file_s, float) and isinstance(ray_s, float):
            result[f"ratio_ray_over_file_{rows // 1000}k"] = ray_s / file_s
    record("offline_store", result)


if __name__ == "__main__":
    main()
