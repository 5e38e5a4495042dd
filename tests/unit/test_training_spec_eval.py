"""The training library's pure parts: the spec, the time split, the operating threshold
and what the model card says the score means."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from driftloop._cli_models import _window_end, model_card
from driftloop.models import ModelStore
from driftloop.training import ModelSpec, load_model_spec, metrics_at, threshold_for
from driftloop.training._dataset import split_by_time
from tests.unit.test_model_store import lineage, put, xgboost_json

ROOT = Path(__file__).resolve().parents[2]


def test_the_shipped_spec_loads_and_a_typo_or_an_owned_param_is_an_error():
    spec = load_model_spec(ROOT / "deploy/apps/fraud/model.yaml")
    assert (spec.name, spec.feature_service) == ("fraud", "fraud_v1")
    assert spec.trainer.cpus_per_worker == 1
    with pytest.raises(ValidationError, match="num_worker"):
        ModelSpec.model_validate({"name": "m", "trainer": {"num_worker": 2}})
    with pytest.raises(ValidationError, match="nthread"):
        ModelSpec.model_validate({"name": "m", "trainer": {"params": {"nthread": 4}}})
    with pytest.raises(ValidationError, match="cpus_per_worker"):
        ModelSpec.model_validate({"name": "m", "trainer": {"cpus_per_worker": 0}})
    with pytest.raises(ValidationError):
        ModelSpec.model_validate({"name": "m", "split": {"train": 0.8, "validation": 0.15,
                                                         "holdout": 0.15}})  # fmt: skip


def test_the_split_is_by_time_and_the_holdout_is_the_latest_slice():
    t0 = datetime(2026, 6, 1, tzinfo=UTC)
    rng = np.random.default_rng(3)
    times = [t0 + timedelta(minutes=int(m)) for m in rng.permutation(1000)]
    frame = pd.DataFrame({"event_timestamp": pd.to_datetime(times, utc=True), "x": range(1000)})
    parts = split_by_time(frame, ModelSpec(name="m"))  # 0.7 / 0.15 / 0.15
    assert [len(parts[n]) for n in ("train", "validation", "holdout")] == [700, 150, 150]
    assert parts["train"]["event_timestamp"].max() < parts["validation"]["event_timestamp"].min()
    assert parts["validation"]["event_timestamp"].max() < parts["holdout"]["event_timestamp"].min()
    assert sorted(pd.concat(parts.values())["x"]) == list(range(1000))


def test_the_threshold_is_chosen_on_validation_and_judged_on_the_holdout():
    y_val, s_val = np.array([0, 0, 1, 1, 0, 1]), np.array([0.1, 0.2, 0.3, 0.8, 0.85, 0.9])
    # Validation precision at 0.3 is 3/4, at 0.8 2/3: 0.3 is the smallest reaching 0.7.
    assert threshold_for(y_val, s_val, 0.7) == pytest.approx(0.3)
    y, s = np.array([0, 1, 1, 0]), np.array([0.2, 0.35, 0.5, 0.31])
    judged = metrics_at(y, s, 0.7, chosen_on=(y_val, s_val))
    assert judged["threshold"] == pytest.approx(0.3)
    assert judged["precision_at_threshold"] == pytest.approx(2 / 3)  # misses the target here
    assert judged["recall_at_threshold"] == 1.0
    # Chosen on the holdout itself, it would have been 0.35 with precision 1 by construction.
    assert metrics_at(y, s, 0.7)["threshold"] == pytest.approx(0.35)
    unreachable = metrics_at(y, s, 0.99, chosen_on=(np.array([1, 0]), np.array([0.1, 0.9])))
    assert "threshold" not in unreachable and unreachable["recall_at_threshold"] == 0.0


def test_the_model_card_says_a_weighted_score_is_not_a_probability(tmp_path):
    store = ModelStore(str(tmp_path))
    params = {"xgboost": {"scale_pos_weight": 19.0}, "target_precision": 0.8,
              "threshold_chosen_on": "validation"}  # fmt: skip
    put(store, xgboost_json(0.3), lineage=lineage(params=params, metrics={"threshold": 0.95}))
    output = model_card(store.latest("fraud"))["output"]
    assert "overstates" in output["score"] and "19.0" in output["score"]
    assert output["positive_class_weight"] == 19.0
    # odds 0.95/0.05 = 19, divided by the weight 19: even odds.
    assert output["threshold_as_probability"] == pytest.approx(0.5)
    assert "validation" in output["threshold_chosen"]
    put(store, xgboost_json(0.4), lineage=lineage(metrics={"threshold": 0.5}))
    plain = model_card(store.latest("fraud"))["output"]
    assert plain["score"].startswith("P(fraud)") and "threshold_as_probability" not in plain


def test_a_window_end_with_an_offset_is_honoured():
    assert _window_end("2026-06-01T12:00:00+02:00") == datetime(2026, 6, 1, 10, tzinfo=UTC)
    assert _window_end("2026-06-01T12:00:00") == datetime(2026, 6, 1, 12, tzinfo=UTC)
