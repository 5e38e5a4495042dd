"""The as-of offline store gives what Feast's file store gives, row for row and dtype for
dtype, on random small histories: ties on event time broken by the created timestamp,
rows exactly at the TTL boundary, entity rows without history, duplicated entity rows,
three views over two entities (one keyed by both), an on-demand view, and
``full_feature_names`` on and off. In-process: Feast's registry is a file, the online
store SQLite, the history parquet files in a temporary directory.

The one difference, by design: the file store keeps one row of entity rows that share
keys and timestamp and orders rows its own way; the as-of store returns every row, in
input order. So the file store's answer is expanded back onto the input rows here."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from feast import (
    Entity,
    FeatureStore,
    FeatureView,
    Field,
    FileSource,
    RequestSource,
    ValueType,
)
from feast.on_demand_feature_view import on_demand_feature_view
from feast.repo_config import RepoConfig
from feast.types import Float64, Int64, String
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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
# Each example asks the file store five times (about 0.5 s in all).
pytestmark = pytest.mark.timeout(180)
REFS = ["cust:c_int", "cust:c_float", "cust:c_str", "merch:m_int", "pair:p_float", "ctx:ratio"]


def _definitions(data: Path) -> list[object]:
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


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FeatureStore, ...]]:
    root = tmp_path_factory.mktemp("asof")
    data = root / "data"
    for name, schema in SCHEMAS.items():
        (data / name).mkdir(parents=True)
        pq.write_table(schema.empty_table(), data / name / "h.parquet")
    out = []
    for offline in ("file", "driftloop.features.AsOfOfflineStore"):
        here = root / offline.rsplit(".", 1)[-1]
        here.mkdir()
        config = RepoConfig(
            project="asof", provider="local", registry=str(here / "registry.db"),
            online_store={"type": "sqlite", "path": str(here / "online.db")},
            offline_store={"type": offline}, entity_key_serialization_version=3,
            repo_path=here,
        )  # fmt: skip
        store = FeatureStore(config=config)
        store.apply(_definitions(data))  # type: ignore[arg-type]
        out.append(store)
    yield tuple(out)


def _at(seconds: float) -> pd.Timestamp:
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
        "customer_id": [r[0] for r in rows], "event_timestamp": [_at(r[1]) for r in rows],
        "created": [_at(20 + c) for c in created], "c_int": [r[2] for r in rows],
        "c_float": [r[3] for r in rows], "c_str": [r[4] for r in rows],
    }  # fmt: skip
    merch = draw(st.lists(st.tuples(st.sampled_from(MERCHANTS[:2]), seconds,
                                   st.integers(0, 9)), max_size=6,
                         unique_by=lambda r: (r[0], r[1])))  # fmt: skip
    history["merch"] = {"merchant_id": [r[0] for r in merch], "ts": [_at(r[1]) for r in merch],
                        "m_int": [r[2] for r in merch]}  # fmt: skip
    pair = draw(st.lists(st.tuples(st.sampled_from(CUSTOMERS[:3]), st.sampled_from(MERCHANTS[:2]),
                                   seconds, st.floats(-1, 1, width=32)), max_size=8))  # fmt: skip
    created = draw(st.permutations(range(len(pair))))
    history["pair"] = {
        "customer_id": [r[0] for r in pair], "merchant_id": [r[1] for r in pair],
        "ts": [_at(r[2]) for r in pair], "created": [_at(20 + c) for c in created],
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
        "event_timestamp": [_at(r[1]) for r in entity_rows],
        "merchant_id": [r[2] for r in entity_rows], "amount": [r[3] for r in entity_rows],
    })  # fmt: skip
    return history, entity


def _write(history: dict[str, dict[str, list[object]]], data: Path) -> None:
    for name, columns in history.items():
        pq.write_table(
            pa.Table.from_pydict(columns, schema=SCHEMAS[name]), data / name / "h.parquet"
        )


@settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))
@given(world=worlds(), full_names=st.booleans(), order=st.permutations(range(len(REFS))))
def test_as_of_store_equals_the_file_store(
    stores: tuple[FeatureStore, FeatureStore],
    world: tuple[dict[str, dict[str, list[object]]], pd.DataFrame],
    full_names: bool,
    order: list[int],
) -> None:
    file_store, asof_store = stores
    history, entity = world
    source = file_store.get_data_source("cust_src")
    assert isinstance(source, FileSource)
    _write(history, Path(source.path).parent)
    refs = [REFS[i] for i in order]
    got = asof_store.get_historical_features(
        entity_df=entity, features=refs, full_feature_names=full_names
    ).to_df()
    joint = file_store.get_historical_features(
        entity_df=entity, features=refs, full_feature_names=full_names
    ).to_df()
    assert list(got.columns) == list(joint.columns)
    # The file store asked one view at a time, on the unique (keys, time) pairs of that
    # view, each answer spread back onto every entity row; a pair it drops (its key has
    # history, none of it fresh) gets nulls, as does a pair without history.
    expected = entity.assign(event_timestamp=entity["event_timestamp"].dt.as_unit("ns"))
    views = {"cust": ["customer_id"], "merch": ["merchant_id"],
             "pair": ["customer_id", "merchant_id"], "ctx": ["customer_id"]}  # fmt: skip
    for view in dict.fromkeys(ref.split(":")[0] for ref in refs):
        keys = [*views[view], "event_timestamp"]
        names = [ref.split(":")[1] for ref in refs if ref.startswith(f"{view}:")]
        columns = [f"{view}__{name}" if full_names else name for name in names]
        answer = file_store.get_historical_features(
            entity_df=entity.drop_duplicates(views[view] + ["event_timestamp"]),
            features=[f"{view}:{name}" for name in names],
            full_feature_names=full_names,
        ).to_df()
        expected = expected.merge(answer[keys + columns], on=keys, how="left",
                                  validate="many_to_one")  # fmt: skip
    pd.testing.assert_frame_equal(got, expected[list(got.columns)], check_exact=True)


def test_materialization_is_the_file_stores(stores: tuple[FeatureStore, FeatureStore]) -> None:
    """``materialize`` (``pull_latest_from_table_or_query``) is inherited from the file
    store: both load the same latest values into their online stores."""
    file_store, asof_store = stores
    source = file_store.get_data_source("cust_src")
    assert isinstance(source, FileSource)
    _write({
        "cust": {"customer_id": ["a", "a", "b"], "event_timestamp": [_at(1), _at(2), _at(1)],
                 "created": [_at(20), _at(21), _at(22)], "c_int": [1, 2, 3],
                 "c_float": [0.5, 1.5, None], "c_str": ["x", "y", None]},
        "merch": {"merchant_id": [1], "ts": [_at(3)], "m_int": [7]},
        "pair": {"customer_id": [], "merchant_id": [], "ts": [], "created": [], "p_float": []},
    }, Path(source.path).parent)  # fmt: skip
    online = []
    for store in (file_store, asof_store):
        store.materialize(_at(0).to_pydatetime(), _at(5).to_pydatetime(), ["cust", "merch"])
        online.append(store.get_online_features(
            features=["cust:c_int", "cust:c_float", "merch:m_int"],
            entity_rows=[{"customer_id": c, "merchant_id": 1} for c in ("a", "b", "d")],
        ).to_dict())  # fmt: skip
    assert online[0] == online[1]
    assert online[1]["c_int"] == [2, 3, None] and online[1]["m_int"] == [7, 7, 7]
