"""Training on the features the endpoint served: the dataset step takes a scored
transaction's features from the stream service's served-features log instead of
recomputing them, and keeps offline point-in-time features for the rest.

Against the session's simulated history and its applied Feast repo; the log is written in
the stream service's own format (``driftloop_stream``'s frame and schema) into a state
directory of this module's own. The Kafka → log path is tested in test_stream_service.py.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from driftloop_stream._served import SERVED_SCHEMA, served_frame

from driftloop.events import Prediction
from driftloop.features import write_batch
from driftloop.settings import Settings
from driftloop.training import ModelSpec
from driftloop.training._dataset import SPLITS, Dataset, build_dataset, read_labelled
from tests.integration.history_support import WINDOW

pytestmark = pytest.mark.timeout(180)


def _frame(dataset: Dataset) -> pd.DataFrame:
    """The unencoded rows of all splits in the labelled history's order (no change point:
    each split is a slice of time, in order)."""
    return pd.concat([dataset.raw[name] for name in SPLITS], ignore_index=True)


def _prediction(tid: str, features: dict[str, object], version: str = "1") -> Prediction:
    return Prediction.model_validate(
        {"request_id": f"r-{tid}-{version}", "transaction_id": tid, "model_name": "fraud",
         "model_version": version, "score": 0.5, "decision": False, "threshold": 0.5,
         "features": features, "latency_ms": 1.0}
    )  # fmt: skip


@pytest.fixture(scope="module")
def served_world(
    history: Settings, training_spec: ModelSpec, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Settings, pd.DataFrame, dict[str, dict[str, object]], Dataset]]:
    """A state directory sharing the history's transactions and features, with a served
    log for every third labelled transaction of the window: the offline values with one
    numeric and one categorical feature changed (one of them null), some vectors lacking a
    feature, and one transaction scored twice (the second vector must lose)."""
    offline = build_dataset(training_spec.model_copy(update={"training_features": "offline"}),
                            history, WINDOW)  # fmt: skip
    labelled = read_labelled(training_spec, history, WINDOW)
    state: Path = tmp_path_factory.mktemp("served") / "state"
    (state / "data").mkdir(parents=True)
    (state / "data" / "transactions.parquet").symlink_to(
        history.state_dir / "data" / "transactions.parquet"
    )
    shutil.copytree(history.state_dir / "feast", state / "feast")  # its registry, online store
    settings = history.model_copy(update={"state_dir": state})
    frame = _frame(offline)
    numeric = next(f.name for f in offline.features if f.type == "float")
    category = next(f.name for f in offline.features if f.type == "categorical")
    served: dict[str, dict[str, object]] = {}
    for i in range(0, len(labelled), 3):
        row = frame.iloc[i]
        vector: dict[str, object] = {
            f.name: (None if pd.isna(row[f.name]) else
                     str(row[f.name]) if f.type == "categorical" else float(row[f.name]))
            for f in offline.features
        }  # fmt: skip
        vector[numeric] = None if i % 9 == 0 else float(i) + 0.25
        vector[category] = f"served-{i % 4}"
        if i % 2:
            del vector[category]  # an older model's vector: the offline value stays
        served[str(labelled["transaction_id"].iloc[i])] = vector
    ids = list(served)
    twice = ids[1]
    batches = [
        [_prediction(t, served[t]) for t in ids[: len(ids) // 2]],
        [_prediction(t, served[t]) for t in ids[len(ids) // 2 :]]
        + [_prediction(twice, {**served[twice], numeric: -1.0}, version="2")],
    ]
    for n, batch in enumerate(batches):
        write_batch(served_frame(batch), str(state / "data" / "served"),
                    f"served-p0-{n:012d}-{n + 1:012d}", SERVED_SCHEMA)  # fmt: skip
    yield settings, labelled, served, offline


def test_scored_rows_train_on_the_features_they_were_served_with(served_world, training_spec):
    settings, labelled, served, offline = served_world
    dataset = build_dataset(training_spec, settings, WINDOW)
    before, after = _frame(offline), _frame(dataset)
    assert len(after) == len(before) == len(labelled)
    ids = labelled["transaction_id"].astype(str).tolist()
    changed_rows = 0
    for i, tid in enumerate(ids):
        vector = served.get(tid)
        for feature in dataset.features:
            got = after[feature.name].iloc[i]
            if vector is None or feature.name not in vector:
                want = before[feature.name].iloc[i]  # unscored, or not in the vector
            else:
                want = vector[feature.name]
            if want is None or (isinstance(want, float) and math.isnan(want)) or pd.isna(want):
                assert pd.isna(got), (tid, feature.name, got)
            elif feature.type == "categorical":
                assert str(got) == str(want), (tid, feature.name, got, want)
            else:
                assert float(got) == pytest.approx(float(want)), (tid, feature.name, got, want)
        changed_rows += vector is not None
    assert changed_rows == len(served)
    assert sum((dataset.served_rows or {}).values()) == len(served)
    assert dataset.regimes()["features"] == {
        "source": "served-where-logged", "served_rows": dataset.served_rows,
    }  # fmt: skip
    assert offline.regimes()["features"] == {"source": "offline", "served_rows": None}
    assert dataset.data_hash != offline.data_hash
    # the categories the endpoint served are what the model's vocabulary learns
    category = next(f.name for f in dataset.features if f.type == "categorical")
    learned = set(dataset.vocabularies[category])
    served_in_train = {v[category] for t, v in served.items()
                       if category in v and ids.index(t) < len(dataset.raw["train"])}  # fmt: skip
    assert served_in_train and served_in_train <= learned


def test_without_a_log_or_by_choice_every_row_is_offline(history, training_spec, served_world):
    settings, _, _, offline = served_world
    by_choice = build_dataset(
        training_spec.model_copy(update={"training_features": "offline"}), settings, WINDOW
    )
    no_log = build_dataset(training_spec, history, WINDOW)  # the shared state has none
    assert by_choice.data_hash == no_log.data_hash == offline.data_hash
    assert no_log.served_rows == dict.fromkeys(SPLITS, 0)
    for name in SPLITS:
        pd.testing.assert_frame_equal(no_log.raw[name], offline.raw[name])
        pd.testing.assert_frame_equal(no_log.splits[name], offline.splits[name])


def test_the_set_built_on_ray_takes_the_same_served_values(served_world, training_spec, tmp_path):
    """On the Ray-partitioned store each partition's task reads its own transactions from
    the log: the same set as the local build, served rows and vocabulary included."""
    settings, _, served, _ = served_world
    local = build_dataset(training_spec, settings, WINDOW)
    on_ray = settings.model_copy(update={"feature_env": "local-ray"})
    sharded = build_dataset(training_spec, on_ray, WINDOW, parts_uri=str(tmp_path / "parts"))
    assert sharded.shards is not None
    assert sharded.served_rows == local.served_rows
    assert sum((sharded.served_rows or {}).values()) == len(served)
    assert sharded.vocabularies == local.vocabularies
    assert sharded.data_hash == local.data_hash
