"""``DensePredictor`` (XGBoost's dense prediction with its arguments made once) against
``Booster.inplace_predict`` on the same boosters and matrices: real XGBoost models
trained here, with missing values, a categorical code and every batch size serving uses."""

from __future__ import annotations

import numpy as np
import pytest
import xgboost
from driftloop_serving._predict import DensePredictor

COLUMNS = 18


def _train(objective: str, classes: int = 2, seed: int = 0) -> xgboost.Booster:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(2_000, COLUMNS)).astype(np.float32)
    x[rng.random(x.shape) < 0.1] = np.nan  # XGBoost's missing branch
    x[:, 11] = rng.integers(0, 8, len(x))  # a category's code
    y = (np.nan_to_num(x[:, 0]) + x[:, 11] / 4 + rng.normal(size=len(x)) > 1).astype(int)
    params = {"objective": objective, "max_depth": 5, "nthread": 1, "seed": seed}
    if classes > 2:
        y = rng.integers(0, classes, len(x))
        params["num_class"] = classes
    return xgboost.train(params, xgboost.DMatrix(x, label=y), num_boost_round=15)


@pytest.fixture(scope="module")
def booster() -> xgboost.Booster:
    return _train("binary:logistic")


def test_scores_equal_inplace_predict_for_every_batch_size(booster):
    rng = np.random.default_rng(1)
    buffer = np.empty((256, COLUMNS), dtype=np.float32)  # as ScoringPlan keeps one
    predictor = DensePredictor(booster)
    for rows in (1, 2, 3, 17, 64, 255, 256):
        for _ in range(3):
            values = rng.normal(size=(rows, COLUMNS)) * 3
            values[rng.random(values.shape) < 0.2] = np.nan
            buffer[:rows] = values
            matrix = buffer[:rows]
            expected = booster.inplace_predict(matrix, validate_features=False)
            got = predictor.predict(matrix)
            assert got.shape == (rows,) and got.dtype == np.float64
            np.testing.assert_array_equal(got, expected.astype(np.float64))
    assert len(set(got.round(6))) > 10  # the rows really differ


def test_a_new_buffer_of_the_same_shape_is_read_not_the_old_one(booster):
    predictor = DensePredictor(booster)
    first = np.zeros((4, COLUMNS), dtype=np.float32)
    second = np.full((4, COLUMNS), 5.0, dtype=np.float32)
    a, b = predictor.predict(first), predictor.predict(second)
    np.testing.assert_array_equal(a, booster.inplace_predict(first, validate_features=False))
    np.testing.assert_array_equal(b, booster.inplace_predict(second, validate_features=False))
    assert not np.array_equal(a, b)


def test_an_answer_is_a_copy_the_next_call_does_not_overwrite(booster):
    predictor = DensePredictor(booster)
    rng = np.random.default_rng(2)
    one = rng.normal(size=(8, COLUMNS)).astype(np.float32)
    kept = predictor.predict(one)
    before = kept.copy()
    predictor.predict(rng.normal(size=(8, COLUMNS)).astype(np.float32))
    np.testing.assert_array_equal(kept, before)


def test_matrices_it_cannot_read_as_they_are_are_refused(booster):
    predictor = DensePredictor(booster)
    with pytest.raises(ValueError, match="float32"):
        predictor.predict(np.zeros((2, COLUMNS)))  # float64
    with pytest.raises(ValueError, match="float32"):
        predictor.predict(np.zeros((COLUMNS, 2), dtype=np.float32).T)  # not C-ordered
    with pytest.raises(RuntimeError, match="XGBoost"):
        predictor.predict(np.zeros((2, COLUMNS - 3), dtype=np.float32))  # too few columns


def test_a_model_with_several_outputs_a_row_is_refused():
    predictor = DensePredictor(_train("multi:softprob", classes=3))
    with pytest.raises(ValueError, match="not a binary model"):
        predictor.predict(np.zeros((2, COLUMNS), dtype=np.float32))
