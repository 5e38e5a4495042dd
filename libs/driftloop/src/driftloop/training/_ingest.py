"""How a sharded training set (``_sharded``) reaches the Ray Train workers: per worker a
Ray Dataset of its own parquet parts. Imports Ray Train and Ray Data: import it only
where a run is started."""

from __future__ import annotations

import io
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import ray
import ray.data
from ray.data.dataset import MaterializedDataset
from ray.train import DataConfig


def read_part(uri: str) -> pa.Table:
    """One parquet part (a path or a filesystem URI), whole."""
    from driftloop.training._persist import read_bytes

    table: pa.Table = pq.read_table(io.BytesIO(read_bytes(uri)))
    return table


def rank_datasets(
    shards: dict[str, list[str]], workers: int
) -> dict[str, MaterializedDataset[Any]]:
    """Per worker ``r`` and split, a Ray Dataset of the split's parts ``p % workers == r``
    (one block per part, in part order), named ``<split>_<r>``: worker ``r`` asks for
    those (``ray.train.get_dataset_shard``) and no other worker's."""
    parts = len(shards["train"])
    if parts < workers:
        raise ValueError(
            f"the training set has {parts} partitions, fewer than the {workers} workers asked "
            "for: raise the offline store's partitions or lower num_workers"
        )
    # Every part is read by a task of its own into the object store, all at once and
    # before the workers take the CPUs; nothing comes to this process. (Ray Data's own
    # read_parquet lists the files in a task that needs a CPU: with both CPUs held by two
    # workers it waited forever, and materializing it first cost about 1.6 s per dataset.)
    read = ray.remote(read_part)
    blocks: dict[str, list[Any]] = {
        split: [read.remote(uri) for uri in uris] for split, uris in shards.items()
    }
    return {
        f"{split}_{rank}": ray.data.from_arrow_refs(refs[rank::workers])
        for split, refs in blocks.items()
        for rank in range(workers)
    }


def unsplit() -> DataConfig:
    """The trainer's data config: no dataset split among the workers (each is one
    worker's already), every dataset read in order."""
    from ray.data import ExecutionOptions

    return DataConfig(datasets_to_split=[], execution_options=ExecutionOptions(preserve_order=True))
