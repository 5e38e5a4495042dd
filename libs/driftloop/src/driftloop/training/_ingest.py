"""How a sharded training set (``_sharded``) reaches the Ray Train workers: per worker a
Ray Dataset of its own parquet parts. Imports Ray Train and Ray Data: import it only
where a run is started."""

from __future__ import annotations

from typing import Any

import ray.data
from ray.data.dataset import MaterializedDataset
from ray.train import DataConfig


def rank_datasets(
    shards: dict[str, list[str]], workers: int
) -> dict[str, MaterializedDataset[Any]]:
    """Per worker ``r`` and split, a Ray Dataset of the split's parts ``p % workers == r``,
    named ``<split>_<r>``: worker ``r`` asks for those (``ray.train.get_dataset_shard``)
    and no other worker's."""
    parts = len(shards["train"])
    if parts < workers:
        raise ValueError(
            f"the training set has {parts} partitions, fewer than the {workers} workers asked "
            "for: raise the offline store's partitions or lower num_workers"
        )
    # Read into the object store now, before the workers take the CPUs: Ray Data's read
    # plan lists the files in a task that needs a CPU, and a run whose workers hold every
    # CPU (two workers here) would wait for one forever. Nothing comes to this process.
    return {
        f"{split}_{rank}": ray.data.read_parquet(uris[rank::workers]).materialize()
        for split, uris in shards.items()
        for rank in range(workers)
    }


def unsplit() -> DataConfig:
    """The trainer's data config: no dataset split among the workers (each is one
    worker's already), every dataset read in order."""
    from ray.data import ExecutionOptions

    return DataConfig(datasets_to_split=[], execution_options=ExecutionOptions(preserve_order=True))
