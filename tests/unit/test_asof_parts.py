"""The partitioned as-of join (the Ray store's plan), run in this process: the local as-of
store's answer, row for row and dtype for dtype, for 1, 3 and 4 partitions, on random
worlds (``tests/asof_worlds.py``) made harder here: merchant keys stored as int32 or int16
in the files while the entity rows hold int64 (or float64, once a key is null), null keys
in entity rows and history, histories split over two files, views in any order. And every
task gets only rows whose keys hash to its partition."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from feast.repo_config import RepoConfig
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from driftloop.features import RayAsOfOfflineStore, RayAsOfOfflineStoreConfig
from driftloop.features._asof import entity_table
from driftloop.features._asof_parts import (
    InProcess,
    JoinPlan,
    collect,
    history_split,
    join_part,
    run,
)
from driftloop.features._asof_view import partition_of, read_history, view_plan
from tests.asof_worlds import (
    BASE,
    FEATURES,
    harder_worlds,
    inferred_views,
    local_answer_and_plans,
    write_split,
)

pytestmark = pytest.mark.timeout(120)


class Recording(InProcess):
    """Runs tasks in process and remembers the entity rows each join task was given."""

    def __init__(self) -> None:
        self.joins: list[tuple[JoinPlan, int, int, pa.Table]] = []

    def submit(self, fn: Any, *args: Any, num_returns: int = 1) -> list[Any]:
        if fn is join_part:
            plan, v, p, entities, *parts = args
            self.joins.append((plan, v, p, pa.concat_tables(parts[:entities])))
        return super().submit(fn, *args, num_returns=num_returns)


@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    world=harder_worlds(),
    key=st.sampled_from([pa.int64(), pa.int32(), pa.int16()]),
    cut=st.floats(0, 1),
    order=st.permutations(list(FEATURES)),
    full_names=st.booleans(),
)
def test_partitioned_join_equals_the_local_store(
    tmp_path_factory: pytest.TempPathFactory,
    world: tuple[dict[str, dict[str, list[object]]], pd.DataFrame],
    key: pa.DataType,
    cut: float,
    order: list[str],
    full_names: bool,
) -> None:
    entity = world[1]
    data = tmp_path_factory.mktemp("parts")
    local, plans = local_answer_and_plans(world, data, key, cut, order, full_names)
    for partitions in (1, 3, 4):
        plan = JoinPlan(plans, partitions, threads=1)
        runner = Recording()
        result = run(plan, entity_table(entity, "event_timestamp"), runner)
        got = collect(result, runner).to_pandas()
        pd.testing.assert_frame_equal(got, local, check_exact=True)
        assert len(runner.joins) == partitions * len(plans)
        for _, v, p, rows in runner.joins:
            hashed = partition_of(rows, plans[v].entity_keys, partitions)
            assert (hashed == p).all(), (v, p)
        for p, block in enumerate(result.blocks):
            assert (partition_of(block, plans[-1].entity_keys, partitions) == p).all()
        assert sorted(np.concatenate(result.rows).tolist()) == list(range(len(entity)))


@pytest.mark.parametrize("partitions", [1, 3, 4])
def test_the_history_is_read_once_and_each_join_task_gets_only_its_partition(
    tmp_path: Path, partitions: int
) -> None:
    rng = np.random.default_rng(7)
    n = 5000
    history = {"pair": {
        "customer_id": [f"c{i}" for i in rng.integers(0, 300, n)],
        "merchant_id": rng.integers(0, 50, n).tolist(),
        "ts": list(BASE + pd.to_timedelta(rng.integers(0, 10**6, n), "s")),
        "created": [pd.Timestamp("2026-03-02", tz="UTC")] * n, "p_float": rng.random(n).tolist(),
    }}  # fmt: skip
    write_split(history, tmp_path, pa.int32(), 0.4, row_group_size=700)  # 3 + 5 row groups
    plan = view_plan(inferred_views(tmp_path)["pair"], ["p_float"], False, None)
    whole = read_history(plan)
    join = JoinPlan([plan], partitions)
    readers = [history_split(join, 0, r) for r in range(partitions)]
    if partitions == 1:
        readers = [[share] for share in readers]
    shares = [pa.concat_tables(parts) for parts in readers]
    # every row read once, by one reader, whose share is its row groups
    assert sorted(map(str, pa.concat_tables(shares).to_pylist())) == sorted(
        map(str, whole.to_pylist())
    )
    parts = [pa.concat_tables([parts[p] for parts in readers]) for p in range(partitions)]
    for p, part in enumerate(parts):
        assert (partition_of(part, ["k0", "k1"], partitions) == p).all()
        assert part.schema == whole.schema
    if partitions > 1:
        assert max(part.num_rows for part in parts) < whole.num_rows * 0.6


def test_a_key_hashes_alike_whatever_its_integer_width_or_string_type() -> None:
    numbers = [1, 2, 3, None, 30_000, 0]
    expected = partition_of(pa.table({"k": pa.array(numbers, pa.int64())}), ["k"], 4)
    for type in (pa.int16(), pa.int32(), pa.uint64(), pa.float32(), pa.float64()):
        got = partition_of(pa.table({"k": pa.array(numbers, type)}), ["k"], 4)
        assert (got == expected).all(), type
    assert len(set(expected.tolist())) > 1
    words = ["a", "b", None, "zz", "c"]
    expected = partition_of(pa.table({"k": pa.array(words, pa.string())}), ["k"], 4)
    for column in (pa.array(words, pa.large_string()), pa.array(words).dictionary_encode()):
        assert (partition_of(pa.table({"k": column}), ["k"], 4) == expected).all()


def test_the_ray_store_is_named_in_a_repo_config(tmp_path: Path) -> None:
    config = RepoConfig(
        project="asof", provider="local", registry=str(tmp_path / "registry.db"),
        online_store={"type": "sqlite", "path": str(tmp_path / "online.db")},
        offline_store={"type": "driftloop.features.RayAsOfOfflineStore", "partitions": 3,
                       "ray_address": "ray://head:10001", "threads": 2},
        entity_key_serialization_version=3, repo_path=tmp_path,
    )  # fmt: skip
    store = config.offline_store
    assert isinstance(store, RayAsOfOfflineStoreConfig)
    assert (store.partitions, store.ray_address, store.threads) == (3, "ray://head:10001", 2)
    from feast.infra.offline_stores.offline_utils import get_offline_store_from_config

    assert isinstance(get_offline_store_from_config(store), RayAsOfOfflineStore)
    with pytest.raises(ValueError, match="partitions"):
        RayAsOfOfflineStoreConfig(partitions=0)
