"""The Ray as-of store on the stack's Ray cluster: real Ray tasks give the local as-of
store's answer, row for row and dtype for dtype, on the random worlds of the in-process
test (``tests/unit/test_asof_parts.py``), and the Ray Dataset it leaves in the cluster has
one block per partition, each holding only rows whose keys hash to it. The history files
are in a temporary directory of this machine, which the local cluster's workers read."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
import ray
from feast import FeatureStore
from feast.repo_config import RepoConfig
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from driftloop.features import RayAsOfRetrievalJob
from driftloop.features._asof import entity_table
from driftloop.features._asof_parts import JoinPlan, collect, run
from driftloop.features._asof_ray import RayRunner
from driftloop.features._asof_view import partition_of
from driftloop.raycluster import enable_token_auth
from tests.asof_worlds import (
    FEATURES,
    at,
    definitions,
    harder_worlds,
    local_answer_and_plans,
    write_split,
)

# Each example runs about 20 Ray tasks for each of two partition counts.
pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def cluster(base_settings):
    """The stack's cluster, whose workers import the tasks from this checkout."""
    if not ray.is_initialized():
        enable_token_auth(base_settings)
        ray.init(address=base_settings.ray_gcs_address, log_to_driver=False)
    return base_settings


def _blocks_hash_to_their_partition(dataset: ray.data.Dataset, keys: list[str], count: int):
    blocks = ray.get(dataset.to_arrow_refs())
    assert len(blocks) == count
    for p, block in enumerate(blocks):
        assert (partition_of(block, keys, count) == p).all(), p
    return blocks


@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    world=harder_worlds(),
    key=st.sampled_from([pa.int64(), pa.int32(), pa.int16()]),
    cut=st.floats(0, 1),
    order=st.permutations(list(FEATURES)),
    full_names=st.booleans(),
)
def test_ray_tasks_give_the_local_stores_answer(
    cluster, tmp_path_factory, world, key, cut, order, full_names
):
    entity = world[1]
    data = tmp_path_factory.mktemp("asof-ray")
    local, plans = local_answer_and_plans(world, data, key, cut, order, full_names)
    runner = RayRunner(num_cpus=1)
    for partitions in (3, 4):
        plan = JoinPlan(plans, partitions, threads=1)
        result = run(plan, entity_table(entity, "event_timestamp"), runner)
        got = collect(result, runner)
        pd.testing.assert_frame_equal(got.to_pandas(), local, check_exact=True)
        dataset = ray.data.from_arrow_refs(result.blocks)
        blocks = _blocks_hash_to_their_partition(dataset, plans[-1].entity_keys, partitions)
        assert sum(block.num_rows for block in blocks) == len(entity)


def _store(root: Path, offline: dict[str, object]) -> FeatureStore:
    here = root / str(offline["type"]).rsplit(".", 1)[-1]
    here.mkdir()
    config = RepoConfig(
        project="asof", provider="local", registry=str(here / "registry.db"),
        online_store={"type": "sqlite", "path": str(here / "online.db")},
        offline_store=offline, entity_key_serialization_version=3, repo_path=here,
    )  # fmt: skip
    store = FeatureStore(config=config)
    store.apply(definitions(root / "data"))  # type: ignore[arg-type]
    return store


def test_through_feast_with_an_on_demand_view(cluster, tmp_path):
    """Named in a repo config, the store answers ``get_historical_features`` as the local
    as-of store does (the on-demand view applied by Feast on the gathered rows), and
    ``to_ray_dataset`` gives the stored features as one block per partition."""
    data = tmp_path / "data"
    write_split({
        "cust": {"customer_id": ["a", "a", "b", "c"],
                 "event_timestamp": [at(1), at(2), at(1), at(9)],
                 "created": [at(20), at(21), at(22), at(23)], "c_int": [1, 2, 3, None],
                 "c_float": [0.5, 1.5, None, 2.0], "c_str": ["x", "y", None, "z"]},
        "merch": {"merchant_id": [1, 2], "ts": [at(3), at(0)], "m_int": [7, 8]},
        "pair": {"customer_id": ["a"], "merchant_id": [1], "ts": [at(2)], "created": [at(20)],
                 "p_float": [0.25]},
    }, data, pa.int32(), 0.5)  # fmt: skip
    entity = pd.DataFrame({
        "customer_id": ["a", "b", "c", "d", "a", "a"],
        "event_timestamp": [at(2), at(3), at(9), at(4), at(2), at(12)],
        "merchant_id": [1, 2, 1, 3, 1, 2], "amount": [10.0, 20.0, 30.0, 40.0, 50.0, 60.0],
    })  # fmt: skip
    refs = ["cust:c_int", "cust:c_float", "merch:m_int", "pair:p_float", "ctx:ratio"]
    local = _store(tmp_path, {"type": "driftloop.features.AsOfOfflineStore"})
    on_ray = _store(tmp_path, {"type": "driftloop.features.RayAsOfOfflineStore",
                               "partitions": 3, "threads": 1})  # fmt: skip
    expected = local.get_historical_features(entity_df=entity, features=refs).to_df()
    job = on_ray.get_historical_features(entity_df=entity, features=refs)
    assert isinstance(job, RayAsOfRetrievalJob)
    pd.testing.assert_frame_equal(job.to_df(), expected, check_exact=True)
    with pytest.raises(ValueError, match="on-demand"):
        job.to_ray_dataset()
    stored = on_ray.get_historical_features(entity_df=entity, features=refs[:-1])
    assert isinstance(stored, RayAsOfRetrievalJob)
    blocks = _blocks_hash_to_their_partition(stored.to_ray_dataset(), stored.partition_keys, 3)
    rows = pd.concat([block.to_pandas() for block in blocks]).sort_values("amount")
    # without the on-demand view, Feast does not fetch the stored feature it reads (c_str)
    plain = local.get_historical_features(entity_df=entity, features=refs[:-1]).to_df()
    pd.testing.assert_frame_equal(rows.reset_index(drop=True), plain, check_exact=True)
