"""The partitioned as-of join (the Ray as-of store's plan) run in one process, one task
after another, against the local as-of store, on a synthetic history: the total work of
partitioning, not its parallel time (that is ``bench/offline_store.py``'s ``ray-asof``
case, on Ray). Two views: customers (8 features, as many history rows as entity rows,
keys strings) and merchants (2 features, a fifth as many rows, keys integers); entity
rows at random times over 30 days. Each case runs in its own process (peak memory is
per case); no Ray, no services.

    python bench/asof_parts.py [--sizes 100000,1000000] [--partitions 4]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from feast import Entity, FeatureView, Field, FileSource, ValueType
from feast.types import Float64, Int64, String

from bench._common import record
from driftloop.features._asof import _join, entity_table
from driftloop.features._asof_parts import InProcess, JoinPlan, collect, run
from driftloop.features._asof_view import view_plan

BASE = np.datetime64("2026-03-01T00:00:00", "ns")
SPAN_NS = 30 * 86400 * 10**9


def _stamps(rng: np.random.Generator, n: int) -> np.ndarray:
    return BASE + rng.integers(0, SPAN_NS, n).astype("timedelta64[ns]")


def world(root: Path, rows: int) -> tuple[dict[FeatureView, list[str]], pd.DataFrame]:
    """The two views (files written on first use) and ``rows`` entity rows."""
    rng, draw = np.random.default_rng(1), np.random.default_rng(2)  # history, entity rows
    customers, merchants = max(rows // 10, 10), max(rows // 200, 10)
    if not (root / "cust").exists():
        (root / "cust").mkdir(parents=True)
        (root / "merch").mkdir()
        utc = pa.timestamp("ns", "UTC")
        pq.write_table(pa.table({
            "customer_id": [f"c{i}" for i in rng.integers(0, customers, rows)],
            "event_timestamp": pa.array(_stamps(rng, rows), utc),
            "created": pa.array(_stamps(rng, rows), utc),
            **{f"f{i}": rng.integers(0, 100, rows) for i in range(4)},
            **{f"g{i}": rng.random(rows) for i in range(4)},
        }), root / "cust" / "h.parquet", row_group_size=128_000)  # fmt: skip
        m = rows // 5
        pq.write_table(pa.table({
            "merchant_id": rng.integers(0, merchants, m),
            "event_timestamp": pa.array(_stamps(rng, m), utc),
            "created": pa.array(_stamps(rng, m), utc),
            "m0": rng.integers(0, 9, m), "m1": rng.random(m),
        }), root / "merch" / "h.parquet", row_group_size=128_000)  # fmt: skip
    customer = Entity(name="customer", join_keys=["customer_id"], value_type=ValueType.STRING)
    merchant = Entity(name="merchant", join_keys=["merchant_id"], value_type=ValueType.INT64)
    cust_features = [f"f{i}" for i in range(4)] + [f"g{i}" for i in range(4)]
    cust = FeatureView(
        name="cust", entities=[customer], ttl=timedelta(days=7),
        schema=[Field(name=n, dtype=Int64 if n[0] == "f" else Float64) for n in cust_features],
        source=FileSource(path=str(root / "cust"), timestamp_field="event_timestamp",
                          created_timestamp_column="created"),
    )  # fmt: skip
    merch = FeatureView(
        name="merch", entities=[merchant], ttl=timedelta(days=2),
        schema=[Field(name="m0", dtype=Int64), Field(name="m1", dtype=Float64)],
        source=FileSource(path=str(root / "merch"), timestamp_field="event_timestamp",
                          created_timestamp_column="created"),
    )  # fmt: skip
    # What FeatureStore.apply would infer.
    cust.entity_columns = [Field(name="customer_id", dtype=String)]
    merch.entity_columns = [Field(name="merchant_id", dtype=Int64)]
    entity = pd.DataFrame({
        "customer_id": [f"c{i}" for i in draw.integers(0, customers, rows)],
        "merchant_id": draw.integers(0, merchants, rows),
        "event_timestamp": pd.to_datetime(_stamps(draw, rows), utc=True),
    })  # fmt: skip
    return {cust: cust_features, merch: ["m0", "m1"]}, entity


def case(root: Path, rows: int, partitions: int) -> dict[str, float]:
    """One timed join (in a child process); ``partitions`` 0: the local store."""
    to_features, entity = world(root, rows)
    started = time.perf_counter()
    if partitions == 0:
        out = _join(entity, "event_timestamp", to_features, False, None,
                    threads=None, memory_limit=None)  # fmt: skip
    else:
        views = [view_plan(view, names, False, None) for view, names in to_features.items()]
        runner = InProcess()
        result = run(JoinPlan(views, partitions), entity_table(entity, "event_timestamp"), runner)
        out = collect(result, runner)
    took = time.perf_counter() - started
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    return {"seconds": took, "rows_out": float(out.num_rows), "peak_rss_gb": peak_gb}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--case", nargs=3, metavar=("ROOT", "ROWS", "PARTITIONS"))
    args = parser.parse_args()
    if args.case:
        root, rows, partitions = args.case
        print(json.dumps(case(Path(root), int(rows), int(partitions))))
        return
    base = Path(tempfile.mkdtemp(prefix="bench-asof-parts-"))
    result: dict[str, object] = {"partitions": args.partitions}
    for rows in (int(s) for s in args.sizes.split(",")):
        size = f"{rows // 1000}k"
        for name, partitions in (("local", 0), ("parts", args.partitions)):
            command = [sys.executable, __file__, "--case", str(base / size), str(rows),
                       str(partitions)]  # fmt: skip
            done = subprocess.run(command, capture_output=True, text=True, check=True)
            measured = json.loads(done.stdout.strip().splitlines()[-1])
            result[f"{name}_{size}_s"] = measured["seconds"]
            result[f"{name}_{size}_peak_rss_gb"] = measured["peak_rss_gb"]
            print(f"{name} {size}: {measured}", flush=True)
        local, parts = result[f"local_{size}_s"], result[f"parts_{size}_s"]
        assert isinstance(local, float) and isinstance(parts, float)
        result[f"ratio_parts_over_local_{size}"] = parts / local
    record("asof_parts", result)


if __name__ == "__main__":
    main()
