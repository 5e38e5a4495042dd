"""The training set built on Ray and read by the Ray Train workers from its parts.

On the ``local-ray`` feature environment (the as-of store partitioned over the stack's
Ray cluster, as ``k8s`` uses it) ``build_dataset`` runs the join, the on-demand view, the
split and the encoding in Ray tasks and writes parquet parts; the driver reads back
validation, holdout and a sample of train. Against the session's simulated history:
the same set as the local build (rows, encoding, vocabulary, data hash, counts), each
worker given only its own parts, and the same booster for the same data and seed — with
one worker, the local path's booster itself."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from driftloop.models import sha256_hex
from driftloop.settings import Settings
from driftloop.training import ModelSpec, build_dataset, fit, load_dataset, save_dataset
from driftloop.training._dataset import LABEL, POST, ROW, SPLITS, Dataset
from driftloop.training._sharded import SAMPLE_ROWS, _read_parts, part_uri
from tests.integration.history_support import WINDOW

pytestmark = pytest.mark.timeout(600)

CHANGE = datetime(2026, 5, 29, tzinfo=UTC)
PARTITIONS = 4  # features/envs/local-ray/feature_store.yaml


@pytest.fixture(scope="module")
def on_ray(history: Settings) -> Settings:
    return history.model_copy(update={"feature_env": "local-ray"})


@pytest.fixture(scope="module")
def built(
    history: Settings, on_ray: Settings, training_spec: ModelSpec,
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Dataset, Dataset, str]:  # fmt: skip
    """The window's set split within regimes at :data:`CHANGE`: built locally, and on Ray
    with its parts under a directory of this module's own."""
    parts = str(tmp_path_factory.mktemp("sharded") / "dataset")
    local = build_dataset(training_spec, history, WINDOW, CHANGE)
    sharded = build_dataset(training_spec, on_ray, WINDOW, CHANGE, parts)
    return local, sharded, parts


def test_the_set_built_on_ray_is_the_local_set(built):
    local, sharded, parts = built
    assert local.shards is None and sharded.shards is not None
    assert sharded.data_hash == local.data_hash
    assert sharded.vocabularies == local.vocabularies
    assert sharded.strategy == local.strategy == "within-regimes"
    assert sharded.regimes() == local.regimes()
    assert sharded.labelled_rows == local.labelled_rows
    for name in SPLITS:
        want = local.splits[name]
        assert sharded.rows(name) == len(want)
        assert sharded.positives(name) == int(want[LABEL].sum()) > 0
        assert sharded.totals is not None
        assert sharded.totals[name]["post_change_rows"] == int(want[POST].sum())
        # every row of the split, from its parts, in ROW order: the local split exactly
        whole = _read_parts([part_uri(parts, name, p) for p in range(PARTITIONS)])
        pd.testing.assert_frame_equal(whole, want, check_exact=True)
    for name in ("validation", "holdout"):
        pd.testing.assert_frame_equal(sharded.splits[name], local.splits[name], check_exact=True)
        pd.testing.assert_frame_equal(sharded.raw[name], local.raw[name], check_exact=True,
                                      check_dtype=False)  # fmt: skip
    # below SAMPLE_ROWS the driver's train "sample" is all of train
    assert len(local.splits["train"]) <= SAMPLE_ROWS
    pd.testing.assert_frame_equal(sharded.splits["train"], local.splits["train"], check_exact=True)
    # above it, every k-th ROW
    every_third = _read_parts([part_uri(parts, "train", p) for p in range(PARTITIONS)], 3)
    train = local.splits["train"]
    pd.testing.assert_frame_equal(
        every_third, train[train[ROW] % 3 == 0].reset_index(drop=True), check_exact=True
    )


def test_a_saved_sharded_set_reads_back_with_its_parts(built, tmp_path):
    _, sharded, _ = built
    uri = str(tmp_path / "saved")
    save_dataset(sharded, uri)
    loaded = load_dataset(uri)
    assert loaded.shards == sharded.shards
    assert loaded.totals == sharded.totals
    assert loaded.data_hash == sharded.data_hash
    assert loaded.regimes() == sharded.regimes()


def test_each_worker_is_given_only_its_own_parts(built, on_ray):
    from driftloop.training._ingest import rank_datasets
    from driftloop.training._train import _connect

    _, sharded, parts = built
    _connect(on_ray)
    datasets = rank_datasets(sharded.shards, 2)
    assert sorted(datasets) == ["train_0", "train_1", "validation_0", "validation_1"]
    for rank in range(2):
        for split in ("train", "validation"):
            rows = np.sort(datasets[f"{split}_{rank}"].to_pandas()[ROW].to_numpy())
            want = np.sort(np.concatenate([
                pd.read_parquet(part_uri(parts, split, p))[ROW].to_numpy()
                for p in range(rank, PARTITIONS, 2)
            ]))  # fmt: skip
            np.testing.assert_array_equal(rows, want)
    with pytest.raises(ValueError, match="4 partitions, fewer than the 5 workers"):
        rank_datasets(sharded.shards, 5)


def test_the_sharded_set_trains_the_same_booster(built, history, on_ray, training_spec):
    """One worker: the booster of the local set's run, byte for byte. Two workers, each
    reading its own parts: the same booster twice."""
    local, sharded, _ = built
    spec = training_spec.model_copy(
        update={"trainer": training_spec.trainer.model_copy(update={"num_boost_round": 40})}
    )
    one_local = fit(spec, local, history, num_workers=1, tune=False)
    one_sharded = fit(spec, sharded, on_ray, num_workers=1, tune=False)
    assert sha256_hex(one_sharded.model_json) == sha256_hex(one_local.model_json)
    assert one_sharded.params["scale_pos_weight"] == one_local.params["scale_pos_weight"]
    two = [fit(spec, sharded, on_ray, num_workers=2, tune=False) for _ in range(2)]
    assert sha256_hex(two[0].model_json) == sha256_hex(two[1].model_json)
