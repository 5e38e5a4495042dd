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
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from feast import FeatureStore, FileSource
from feast.repo_config import RepoConfig
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.asof_worlds import SCHEMAS, at, definitions, worlds, write

# Each example asks the file store five times (about 0.5 s in all).
pytestmark = pytest.mark.timeout(180)
REFS = ["cust:c_int", "cust:c_float", "cust:c_str", "merch:m_int", "pair:p_float", "ctx:ratio"]


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
        store.apply(definitions(data))  # type: ignore[arg-type]
        out.append(store)
    yield tuple(out)


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
    write(history, Path(source.path).parent)
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
    write({
        "cust": {"customer_id": ["a", "a", "b"], "event_timestamp": [at(1), at(2), at(1)],
                 "created": [at(20), at(21), at(22)], "c_int": [1, 2, 3],
                 "c_float": [0.5, 1.5, None], "c_str": ["x", "y", None]},
        "merch": {"merchant_id": [1], "ts": [at(3)], "m_int": [7]},
        "pair": {"customer_id": [], "merchant_id": [], "ts": [], "created": [], "p_float": []},
    }, Path(source.path).parent)  # fmt: skip
    online = []
    for store in (file_store, asof_store):
        store.materialize(at(0).to_pydatetime(), at(5).to_pydatetime(), ["cust", "merch"])
        online.append(store.get_online_features(
            features=["cust:c_int", "cust:c_float", "merch:m_int"],
            entity_rows=[{"customer_id": c, "merchant_id": 1} for c in ("a", "b", "d")],
        ).to_dict())  # fmt: skip
    assert online[0] == online[1]
    assert online[1]["c_int"] == [2, 3, None] and online[1]["m_int"] == [7, 7, 7]
