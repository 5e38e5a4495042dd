"""Random small as-of worlds shared by the as-of stores' tests: three views over two
entities (customer, merchant, and the pair), each with its own TTL, a request source and
an on-demand view; histories with ties on event time, rows at the TTL boundary, keys
without history; entity rows with duplicates, in random order."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from feast import (
    Entity,
    FeatureView,
    Field,
    FileSource,
    RequestSource,
    ValueType,
)
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Float64, Int64, String
from hypothesis import strategies as st

from driftloop.features._asof_view import ViewPlan, view_plan

BASE = pd.Timestamp("2026-03-01", tz="UTC")
CUSTOMERS, MERCHANTS = ["a", "b", "c", "d"], [1, 2, 3]  # "d" and 3 have no history
TTL = {"cust": timedelta(seconds=3), "merch": timedelta(0), "pair": timedelta(seconds=5)}
SCHEMAS = {
    "cust": pa.schema([("customer_id", pa.string()), ("event_timestamp", pa.timestamp("ns", "UTC")),
                       ("created", pa.timestamp("ns", "UTC")), ("c_int", pa.int64()),
                       ("c_float", pa.float64()), ("c_str", pa.string())]),
    "merch": pa.schema([("merchant_id", pa.int64()), ("ts", pa.timestamp("us", "UTC")),
                        ("m_int", pa.int64())]),
    "pair": pa.schema([("customer_id", pa.string()), ("merchant_id", pa.int64()),
                       ("ts", pa.timestamp("ns", "UTC")), ("created", pa.timestamp("ns", "UTC")),
                       ("p_float", pa.float64())]),
}  # fmt: skip


def definitions(data: Path) -> list[object]:
    customer = Entity(name="customer", join_keys=["customer_id"], value_type=ValueType.STRING)
    merchant = Entity(name="merchant", join_keys=["merchant_id"], value_type=ValueType.INT64)

    def source(name: str, ts: str, created: str | None) -> FileSource:
        return FileSource(name=f"{name}_src", path=str(data / name), timestamp_field=ts,
                          created_timestamp_column=created or "")  # fmt: skip

    cust = FeatureView(
        name="cust", entities=[customer], ttl=TTL["cust"],
        schema=[Field(name="c_int", dtype=Int64), Field(name="c_float", dtype=Float64),
                Field(name="c_str", dtype=String)],
        source=source("cust", "event_timestamp", "created"),
    )  # fmt: skip
    merch = FeatureView(name="merch", entities=[merchant], ttl=TTL["merch"],
                        schema=[Field(name="m_int", dtype=Int64)],
                        source=source("merch", "ts", None))  # fmt: skip
    pair = FeatureView(name="pair", entities=[customer, merchant], ttl=TTL["pair"],
                       schema=[Field(name="p_float", dtype=Float64)],
                       source=source("pair", "ts", "created"))  # fmt: skip
    request = RequestSource(name="req", schema=[Field(name="amount", dtype=Float64)])

    @on_demand_feature_view(  # type: ignore[untyped-decorator]
        sources=[cust, request], schema=[Field(name="ratio", dtype=Float64)], mode="pandas"
    )
    def ctx(inputs: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({"ratio": inputs["amount"] / inputs["c_float"]}, index=inputs.index)

    return [customer, merchant, cust, merch, pair, request, ctx]


def at(seconds: float) -> pd.Timestamp:
    return BASE + pd.Timedelta(seconds=seconds)


@st.composite
def worlds(draw: st.DrawFn) -> tuple[dict[str, dict[str, list[object]]], pd.DataFrame]:
    seconds = st.integers(0, 10)
    history: dict[str, dict[str, list[object]]] = {}
    rows = draw(st.lists(st.tuples(st.sampled_from(CUSTOMERS[:3]), seconds,
                                   st.one_of(st.none(), st.integers(-5, 5)),
                                   st.one_of(st.none(), st.floats(0.5, 9, width=32)),
                                   st.one_of(st.none(), st.sampled_from(["x", "y"]))),
                         max_size=8))  # fmt: skip
    created = draw(st.permutations(range(len(rows))))  # distinct: no full ties
    history["cust"] = {
        "customer_id": [r[0] for r in rows], "event_timestamp": [at(r[1]) for r in rows],
        "created": [at(20 + c) for c in created], "c_int": [r[2] for r in rows],
        "c_float": [r[3] for r in rows], "c_str": [r[4] for r in rows],
    }  # fmt: skip
    merch = draw(st.lists(st.tuples(st.sampled_from(MERCHANTS[:2]), seconds,
                                   st.integers(0, 9)), max_size=6,
                         unique_by=lambda r: (r[0], r[1])))  # fmt: skip
    history["merch"] = {"merchant_id": [r[0] for r in merch], "ts": [at(r[1]) for r in merch],
                        "m_int": [r[2] for r in merch]}  # fmt: skip
    pair = draw(st.lists(st.tuples(st.sampled_from(CUSTOMERS[:3]), st.sampled_from(MERCHANTS[:2]),
                                   seconds, st.floats(-1, 1, width=32)), max_size=8))  # fmt: skip
    created = draw(st.permutations(range(len(pair))))
    history["pair"] = {
        "customer_id": [r[0] for r in pair], "merchant_id": [r[1] for r in pair],
        "ts": [at(r[2]) for r in pair], "created": [at(20 + c) for c in created],
        "p_float": [r[3] for r in pair],
    }  # fmt: skip
    # Entity rows: one per (customer, time) — the file store keeps one row per such pair —
    # then some repeated exactly, in a random order.
    unique = draw(st.lists(st.tuples(st.sampled_from(CUSTOMERS), st.integers(0, 14),
                                     st.sampled_from(MERCHANTS), st.floats(1, 100, width=32)),
                           min_size=1, max_size=10, unique_by=lambda r: (r[0], r[1])))  # fmt: skip
    repeated = draw(st.lists(st.sampled_from(unique), max_size=3))
    entity_rows = draw(st.permutations(unique + repeated))
    entity = pd.DataFrame({
        "customer_id": [r[0] for r in entity_rows],
        "event_timestamp": [at(r[1]) for r in entity_rows],
        "merchant_id": [r[2] for r in entity_rows], "amount": [r[3] for r in entity_rows],
    })  # fmt: skip
    return history, entity


def write(history: dict[str, dict[str, list[object]]], data: Path) -> None:
    for name, columns in history.items():
        pq.write_table(
            pa.Table.from_pydict(columns, schema=SCHEMAS[name]), data / name / "h.parquet"
        )


# Harder worlds for the partitioned join, compared with the local as-of store only (Feast's
# file store treats null keys differently): null keys in history and entity rows, merchant
# keys stored narrower than the entity rows hold them, histories split over two files.
FEATURES = {"cust": ["c_int", "c_float", "c_str"], "merch": ["m_int"], "pair": ["p_float"]}


def write_split(
    history: dict[str, dict[str, list[object]]],
    data: Path,
    key: pa.DataType,
    cut: float,
    row_group_size: int | None = None,
) -> None:
    """Each view's history in two files (split at ``cut``), merchant keys as ``key``."""
    for name, columns in history.items():
        schema = SCHEMAS[name]
        if "merchant_id" in schema.names:
            index = schema.get_field_index("merchant_id")
            schema = schema.set(index, pa.field("merchant_id", key))
        table = pa.Table.from_pydict(columns, schema=schema)
        split = int(table.num_rows * cut)
        (data / name).mkdir(parents=True, exist_ok=True)
        pq.write_table(table.slice(0, split), data / name / "a.parquet",
                       row_group_size=row_group_size)  # fmt: skip
        pq.write_table(table.slice(split), data / name / "b.parquet",
                       row_group_size=row_group_size)  # fmt: skip


def inferred_views(data: Path) -> dict[str, FeatureView]:
    """The worlds' views with their entity columns, as ``FeatureStore.apply`` infers them."""
    keys = {"customer": Field(name="customer_id", dtype=String),
            "merchant": Field(name="merchant_id", dtype=Int64)}  # fmt: skip
    views = {d.name: d for d in definitions(data) if type(d) is FeatureView}
    for view in views.values():
        view.entity_columns = [keys[name] for name in view.entities]
    return views


@st.composite
def harder_worlds(draw: st.DrawFn) -> tuple[dict[str, dict[str, list[object]]], pd.DataFrame]:
    history, entity = draw(worlds())
    for name in ("cust", "pair"):  # null keys in the history
        ids = history[name]["customer_id"]
        for i in draw(st.sets(st.integers(0, max(len(ids) - 1, 0)), max_size=2)):
            if i < len(ids):
                ids[i] = None
    entity = entity.copy()
    rows = st.sets(st.integers(0, len(entity) - 1), max_size=2)
    nulls_c, nulls_m = draw(rows), draw(rows)
    if nulls_c:
        entity["customer_id"] = entity["customer_id"].astype(object)
        entity.loc[sorted(nulls_c), "customer_id"] = None
    if nulls_m:  # pandas: an int64 column with a null becomes float64
        entity["merchant_id"] = entity["merchant_id"].astype("float64")
        entity.loc[sorted(nulls_m), "merchant_id"] = np.nan
    return history, entity


def local_answer_and_plans(
    world: tuple[dict[str, dict[str, list[object]]], pd.DataFrame],
    data: Path,
    key: pa.DataType,
    cut: float,
    order: list[str],
    full_names: bool,
) -> tuple[pd.DataFrame, list[ViewPlan]]:
    """The world's history written under ``data``; the local as-of store's answer for its
    entity rows and the partitioned join's view plans, views in ``order``."""
    from driftloop.features._asof import _join

    history, entity = world
    write_split(history, data, key, cut)
    views = inferred_views(data)
    to_features = {views[name]: FEATURES[name] for name in order}
    local = _join(entity, "event_timestamp", to_features, full_names, None,
                  threads=1, memory_limit=None).to_pandas()  # fmt: skip
    plans = [view_plan(view, features, full_names, None) for view, features in to_features.items()]
    return local, plans
