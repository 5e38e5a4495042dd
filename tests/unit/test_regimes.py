"""A run after a change point: the split within regimes, what the dataset records about
it, and the reference profiles the registered version is monitored against."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from driftloop.models import Feature
from driftloop.profiles import REFERENCE_FEATURES, REFERENCE_SCORES, SCORE_COLUMN, deserialize
from driftloop.training import ModelSpec
from driftloop.training._dataset import (
    LABEL,
    POST,
    ROW,
    SPLITS,
    TIME_SPLIT,
    TS,
    WITHIN_REGIMES,
    Dataset,
    split_by_time,
    split_within_regimes,
)
from driftloop.training._persist import load_dataset, save_dataset
from driftloop.training._train import _references

T0 = datetime(2026, 6, 1, tzinfo=UTC)
SPEC = ModelSpec(name="m")  # 0.7 / 0.15 / 0.15


def _frame(n: int = 1000, seed: int = 3) -> pd.DataFrame:
    """``n`` rows one minute apart, shuffled: ``x`` is the row's rank in time."""
    order = np.random.default_rng(seed).permutation(n)
    times = pd.to_datetime([T0 + timedelta(minutes=int(m)) for m in order], utc=True)
    return pd.DataFrame({TS: times, "x": order})


def test_without_a_change_point_the_split_is_the_time_split_exactly():
    frame = _frame()
    parts, strategy = split_within_regimes(frame, SPEC, None)
    assert strategy == TIME_SPLIT
    for name, part in split_by_time(frame, SPEC).items():
        pd.testing.assert_frame_equal(parts[name], part)
        assert POST not in parts[name].columns


def test_within_regimes_every_split_holds_both_regimes_in_the_spec_s_fractions():
    frame = _frame().sort_values(TS, ignore_index=True)  # as read_labelled returns rows
    change = T0 + timedelta(minutes=800)  # the last 200 rows are the new regime
    parts, strategy = split_within_regimes(frame, SPEC, change)
    assert strategy == WITHIN_REGIMES
    post = {name: int(parts[name][POST].sum()) for name in SPLITS}
    pre = {name: len(parts[name]) - post[name] for name in SPLITS}
    assert post == {"train": 140, "validation": 30, "holdout": 30}
    assert pre == {"train": 560, "validation": 120, "holdout": 120}
    # the flag says which side of the change point a row is on
    for part in parts.values():
        assert ((part[TS] >= pd.Timestamp(change)) == (part[POST] == 1)).all()
    # no row lost or duplicated
    assert sorted(pd.concat(parts.values())["x"]) == list(range(1000))
    # time order kept within every split, and each regime's slices follow each other
    for part in parts.values():
        assert part[TS].is_monotonic_increasing
    for regime in (0, 1):
        last = [parts[n][parts[n][POST] == regime][TS] for n in SPLITS]
        assert last[0].max() < last[1].min() and last[1].max() < last[2].min()


def test_a_change_point_outside_the_window_flags_rows_but_splits_by_time():
    frame = _frame()
    for change, flagged in ((T0 - timedelta(days=1), 1), (T0 + timedelta(days=1), 0)):
        parts, strategy = split_within_regimes(frame, SPEC, change)
        assert strategy == TIME_SPLIT
        for name, part in split_by_time(frame, SPEC).items():
            assert parts[name]["x"].tolist() == part["x"].tolist()
            assert (parts[name][POST] == flagged).all()


def _dataset(post_train: int, change: datetime | None = T0) -> Dataset:
    """Train rows: 300 before the change (x = 0) and ``post_train`` after it (x = 1);
    holdout: 40 before (scores 0.1) and 60 after (scores 0.9)."""

    def split(before: int, after: int) -> tuple[pd.DataFrame, pd.DataFrame]:
        x = np.r_[np.zeros(before), np.ones(after)].astype("float32")
        label = np.r_[np.zeros(before), np.ones(after)].astype("int32")
        encoded = pd.DataFrame({ROW: np.arange(len(x)), "x": x, LABEL: label})
        if change is not None:
            encoded[POST] = x.astype("int8")
        return encoded, pd.DataFrame({"x": x})

    (train, raw_train), (val, raw_val), (hold, raw_hold) = (
        split(300, post_train),
        split(30, 30),
        split(40, 60),
    )
    return Dataset(
        [Feature(name="x", type="float")], {},
        {"train": train, "validation": val, "holdout": hold}, "h",
        {"train": raw_train, "validation": raw_val, "holdout": raw_hold},
        change_point=change, strategy=WITHIN_REGIMES if change else TIME_SPLIT,
    )  # fmt: skip


SCORES = [0.1] * 40 + [0.9] * 60


def _profiled(references: dict[str, bytes]) -> tuple[int, float, int, float]:
    """Rows and mean of ``x`` in the features profile; of the score in the scores one."""
    out: list[tuple[int, float]] = []
    for name, column in ((REFERENCE_FEATURES, "x"), (REFERENCE_SCORES, SCORE_COLUMN)):
        dist = deserialize(references[name]).get_column(column).get_metric("distribution")
        out.append((int(dist.n), float(dist.mean.value)))
    return out[0][0], out[0][1], out[1][0], out[1][1]


def test_references_are_of_the_post_change_rows_when_there_are_enough():
    """Every split's post-change rows (600 + 30 + 60): the regime's whole span, not only
    its oldest part; the scores of the post-change holdout rows only."""
    references, which = _references(_dataset(post_train=600), SCORES)
    assert which == "post-change"
    rows, mean_x, scored, mean_score = _profiled(references)
    assert (rows, mean_x, scored) == (690, 1.0, 60)
    assert mean_score == pytest.approx(0.9)


@pytest.mark.parametrize("post_train, change", [(409, T0), (600, None)])
def test_references_are_of_all_rows_otherwise(post_train, change):
    references, which = _references(_dataset(post_train, change), SCORES)
    assert which == "all"
    rows, mean_x, scored, _ = _profiled(references)
    assert (rows, scored) == (300 + post_train, 100)
    assert mean_x == pytest.approx(post_train / (300 + post_train))


def test_the_dataset_records_its_regimes_and_keeps_them_through_a_save(tmp_path):
    dataset = _dataset(post_train=600)
    assert dataset.regimes() == {
        "strategy": WITHIN_REGIMES, "change_point": T0.isoformat(),
        "train": {"post_change_rows": 600, "post_change_positives": 600},
        "validation": {"post_change_rows": 30, "post_change_positives": 30},
        "holdout": {"post_change_rows": 60, "post_change_positives": 60},
        "features": {"source": "offline", "served_rows": None},
    }  # fmt: skip
    from driftloop.training._dataset import frame_hash

    served = {"train": 500, "validation": 30, "holdout": 0}
    hashed = Dataset(
        **{**dataset.__dict__, "data_hash": frame_hash(dataset.splits), "served_rows": served}
    )
    save_dataset(hashed, str(tmp_path / "ds"))
    loaded = load_dataset(str(tmp_path / "ds"))
    assert (loaded.change_point, loaded.strategy) == (T0, WITHIN_REGIMES)
    assert loaded.regimes() == hashed.regimes()
    assert loaded.regimes()["features"] == {"source": "served-where-logged", "served_rows": served}
    plain = _dataset(post_train=600, change=None)
    assert plain.post_change("holdout") is None
    assert plain.regimes() == {
        "strategy": TIME_SPLIT, "change_point": None,
        "features": {"source": "offline", "served_rows": None},
    }  # fmt: skip
