"""Building a training set on each offline store: the point-in-time join of driftloop's
`fraud_v1` service (``point_in_time``: both stored views, the on-demand view, one row per
labelled row) for about 20 k and 1 M labelled rows, in the same run, on the same history
and feature files:

- ``asof``: the as-of store (``local``, the default): DuckDB's ASOF JOIN behind Feast;
- ``raw``: the floor — the same two as-of joins written directly in DuckDB over the same
  parquet files and entity rows, no Feast, no on-demand view; the goal is asof ≤ 3x raw;
- ``file``: Feast's file (dask) store (``local-file``);
- ``ray-asof``: the as-of store partitioned over Ray (``local-ray``: 4 partitions, one
  DuckDB thread per task; needs the local Ray head); the goal is ray-asof ≤ 2x asof at
  1 M rows, the ratio printed as ``ratio_ray_asof_over_asof_<size>``. The driver's first
  join also starts its Ray workers (their imports of Feast, DuckDB, pyarrow): it is
  reported as ``..._first_s``, and ``..._s`` is the same join again.

Feast's own Ray store, which ``local-ray`` used before, did not finish 20 k rows in 600 s
(features/README.md); it is no longer a case here.

Each case runs in its own process with a time limit; a case that does not finish, or
dies, is reported as such and the larger sizes of that store are then skipped. Each case
reports its peak resident memory (``peak_rss_gb``, the whole process: the labelled
history it reads is about 0.4 GB of it at 1 M rows) and its resident memory before the
join. The file store's 1 M-row query was killed by the kernel at 21.9 GB resident on a
24 GB machine, and its 20 k-row one took 7.8-171 s here, so by default it runs at the
smaller sizes only (``--max-rows``).

    python bench/offline_store.py [--sizes 20000,1000000] [--stores asof,raw,file,ray-asof]
                                  [--max-rows file=20000] [--limit-s 600]
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
STORES = {"asof": "local", "raw": "local", "file": "local-file", "ray-asof": "local-ray"}


def _settings(root: Path, env: str) -> Settings:
    return Settings(
        state_dir=root / env / "state", feature_env=env,
        feature_data_uri=str(root / "features"),
    )  # fmt: skip


def prepare(root: Path, rows: int, envs: set[str]) -> int:
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
    for env in envs:
        apply_repo(_settings(root, env))
    return int(history["label_timestamp"].notna().sum())


def _rss_gb() -> float:
    resident_pages = int(Path("/proc/self/statm").read_text().split()[1])
    return resident_pages * resource.getpagesize() / 1024**3


def raw_join(root: Path, entities: pd.DataFrame) -> pd.DataFrame:
    """The floor: the customer and merchant as-of joins in DuckDB alone, the latest row
    per (key, time) by ``created`` and the views' TTLs as in the store."""
    import duckdb

    features = root / "features"
    con = duckdb.connect()
    con.register("e", entities[["customer_id", "merchant_id", "event_timestamp"]])
    joined: pd.DataFrame = con.sql(f"""
        WITH c AS (SELECT * FROM read_parquet('{features}/customer_aggregates/*.parquet')
                   QUALIFY row_number() OVER (PARTITION BY customer_id, event_timestamp
                                              ORDER BY created DESC) = 1),
             m AS (SELECT * FROM read_parquet('{features}/merchant_stats/*.parquet')
                   QUALIFY row_number() OVER (PARTITION BY merchant_id, event_timestamp
                                              ORDER BY created DESC) = 1)
        SELECT e.*, COLUMNS(c.* EXCLUDE (customer_id, event_timestamp, created)),
               COLUMNS(m.* EXCLUDE (merchant_id, event_timestamp, created)),
               c.event_timestamp >= e.event_timestamp - INTERVAL 7 DAY AS c_fresh,
               m.event_timestamp >= e.event_timestamp - INTERVAL 2 DAY AS m_fresh
        FROM e
        ASOF LEFT JOIN c ON e.customer_id = c.customer_id
                        AND e.event_timestamp >= c.event_timestamp
        ASOF LEFT JOIN m ON e.merchant_id = m.merchant_id
                        AND e.event_timestamp >= m.event_timestamp
    """).df()
    return joined


def case(root: Path, store_name: str, rows: int) -> dict[str, float]:
    """One timed point-in-time join (run in a child process)."""
    settings = _settings(root, STORES[store_name])
    history = pd.read_parquet(root / "data" / "transactions.parquet")
    labelled = history[history["label_timestamp"].notna()].tail(rows)
    if store_name == "raw":
        entities = training_entities(labelled)
        before = _rss_gb()
        started = time.perf_counter()
        joined = raw_join(root, entities)
        took = time.perf_counter() - started
        peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
        return {"seconds": took, "rows_out": float(len(joined)),
                "with_history_share": float(joined["txn_count_7d"].notna().mean()),
                "peak_rss_gb": peak_gb, "rss_before_gb": before}  # fmt: skip
    store = open_store(settings)
    if store_name == "ray-asof":  # connecting to the cluster is not part of the join
        import ray

        ray.init(address=settings.ray_gcs_address, log_to_driver=False)
    service = store.get_feature_service("fraud_v1")
    served = {f.name for p in service.feature_view_projections for f in p.features}
    entities = training_entities(labelled.drop(columns=sorted(served & set(labelled.columns))))
    before = _rss_gb()
    first: dict[str, float] = {}
    if store_name == "ray-asof":
        # A driver's first join also starts its Ray workers, which import Feast, DuckDB and
        # pyarrow: reported apart (``first_seconds``); ``seconds`` is the same join again.
        started = time.perf_counter()
        point_in_time(store, entities, service)
        first["first_seconds"] = time.perf_counter() - started
    started = time.perf_counter()
    joined = point_in_time(store, entities, service)
    took = time.perf_counter() - started
    found = float(joined["txn_count_7d"].notna().mean())
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # KiB on Linux
    return {"seconds": took, "rows_out": float(len(joined)), "with_history_share": found,
            "peak_rss_gb": peak_gb, "rss_before_gb": before, **first}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="20000,1000000")
    parser.add_argument("--stores", default="asof,raw,file,ray-asof")
    parser.add_argument("--max-rows", default="file=20000")
    parser.add_argument("--limit-s", type=float, default=600)
    parser.add_argument("--case", nargs=3, metavar=("ROOT", "STORE", "ROWS"))
    args = parser.parse_args()
    if args.case:
        root, name, rows = args.case
        print(json.dumps(case(Path(root), name, int(rows))))
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    stores = args.stores.split(",")
    unknown = sorted(set(stores) - set(STORES))
    if unknown:
        parser.error(f"unknown stores {unknown}; known: {sorted(STORES)}")
    max_rows = {k: int(v) for k, v in (p.split("=") for p in args.max_rows.split(",") if p)}
    root = Path(tempfile.mkdtemp(prefix="bench-offline-"))
    started = time.perf_counter()
    labelled = prepare(root, max(sizes), {STORES[name] for name in stores})
    result: dict[str, object] = {"labelled_rows_available": labelled,
                                 "prepare_s": time.perf_counter() - started}  # fmt: skip
    for name in stores:
        gave_up = False
        for rows in sizes:
            key = f"{name}_{rows // 1000}k"
            if gave_up:
                result[f"{key}_s"] = "skipped: the smaller size did not finish"
                continue
            if rows > max_rows.get(name, rows):
                result[f"{key}_s"] = f"skipped: above --max-rows {name}={max_rows[name]}"
                continue
            command = [sys.executable, __file__, "--case", str(root), name, str(rows)]
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
            result[f"{key}_rss_before_gb"] = measured["rss_before_gb"]
            if "first_seconds" in measured:
                result[f"{key}_first_s"] = measured["first_seconds"]
            print(f"{key}: {measured}", flush=True)
    for rows in sizes:
        size = f"{rows // 1000}k"
        asof = result.get(f"asof_{size}_s")
        for other in ("raw", "file"):
            seconds = result.get(f"{other}_{size}_s")
            if isinstance(asof, float) and isinstance(seconds, float):
                result[f"ratio_asof_over_{other}_{size}"] = asof / seconds
        on_ray = result.get(f"ray-asof_{size}_s")
        if isinstance(asof, float) and isinstance(on_ray, float):
            result[f"ratio_ray_asof_over_asof_{size}"] = on_ray / asof
            print(f"ray-asof / asof at {size}: {on_ray / asof:.2f}", flush=True)
    record("offline_store", result)


if __name__ == "__main__":
    main()
