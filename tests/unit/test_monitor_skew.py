"""The skew check's figures, policy and sample, without Feast or Kafka."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest
from driftloop_monitor._skew import in_sample
from pydantic import ValidationError

from driftloop.drift import MonitorPolicy, SkewSpec, WindowRecord, compare_column, compare_skew

SPEC = SkewSpec(enabled=True, tolerance=1e-6, max_share=0.05)


def test_equal_values_show_no_skew_and_a_wrong_share_is_measured() -> None:
    same = compare_column("txn_count_24h", [1, 2, 3, None], [1, 2, 3, None], SPEC)
    assert same.differing == 0 and not same.skewed and same.mean_diff == 0
    wrong = compare_column("txn_count_24h", [1, 2, 2, 5], [1, 3, 3, 5], SPEC)
    assert wrong.differing == 0.5 and wrong.skewed
    assert wrong.served_mean == 2.5 and wrong.offline_mean == 3.0 and wrong.mean_diff == -0.5


def test_tolerance_is_relative_and_a_value_against_none_differs() -> None:
    near = compare_column("amount_mean_7d", [1000.0000001, 0.5], [1000.0, 0.5], SPEC)
    assert near.differing == 0
    one_sided = compare_column("amount_mean_7d", [None, 2.0, 3.0], [1.0, None, 3.0], SPEC)
    assert one_sided.differing == pytest.approx(2 / 3)
    assert (one_sided.served_missing, one_sided.offline_missing) == (1, 1)
    assert one_sided.mean_diff == 0  # the means are over rows where both have a number


def test_categories_compare_as_text_and_nan_counts_as_missing() -> None:
    out = compare_column("merchant_category", ["grocery", "travel", float("nan")],
                         ["grocery", "fuel", None], SPEC)  # fmt: skip
    assert out.differing == pytest.approx(1 / 3) and out.mean_diff is None


def test_a_record_names_the_skewed_features_and_leaves_out_the_excluded() -> None:
    served = pd.DataFrame({"a": [1.0, 2.0], "b": [1.0, 9.0], "c": [0, 0]})
    offline = pd.DataFrame({"a": [1.0, 2.0], "b": [1.0, 2.0], "c": [1, 1]})
    spec = SPEC.model_copy(update={"exclude": ["c"]})
    record = compare_skew(served, offline, ["a", "b", "c", "absent"], spec, sampled=3)
    assert [c.column for c in record.columns] == ["a", "b"]
    assert record.skewed == ["b"] and (record.sampled, record.compared) == (3, 2)
    with pytest.raises(ValueError, match="rows"):
        compare_skew(served, offline.iloc[:1], ["a"], spec)


def test_the_policy_section_is_off_by_default_and_forbids_unknown_keys() -> None:
    policy = MonitorPolicy(model="fraud")
    assert not policy.skew.enabled and policy.skew.sample == 150
    on = MonitorPolicy.model_validate({"model": "fraud", "skew": {"enabled": True, "sample": 100}})
    assert on.skew.enabled and on.skew.sample == 100
    with pytest.raises(ValidationError):
        MonitorPolicy.model_validate({"model": "fraud", "skew": {"enabeld": True}})


def test_a_record_written_before_the_skew_check_still_reads() -> None:
    old = WindowRecord(kind="data", model="fraud", version="v", row_count=1, verdict="ok",
                       start=datetime(2026, 1, 1, tzinfo=UTC),
                       end=datetime(2026, 1, 1, tzinfo=UTC))  # fmt: skip
    raw = old.model_dump(exclude={"skew"})
    assert WindowRecord.model_validate(raw).skew is None


def test_the_sample_is_a_stable_hash_of_the_id_at_about_the_rate() -> None:
    ids = [f"tx-{i}" for i in range(20_000)]
    picked = [i for i in ids if in_sample(i, 0.075)]
    assert 0.065 < len(picked) / len(ids) < 0.085
    assert picked == [i for i in ids if in_sample(i, 0.075)]
    assert all(in_sample(i, 1.0) for i in ids[:100])
