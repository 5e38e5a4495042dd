"""Scoring a batch with a real model and a real (file-based) Feast online store: one
feature read per batch, whatever its size, and the same scores as one at a time.

``@serve.batch`` itself only runs inside a Serve replica; each of its batches is one
``score_batch`` call (``FraudServiceImpl._score_many``), which is what is counted here.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd
import pytest
from driftloop_serving import ActiveModel, ModelSlot, score_batch

from driftloop.events import Transaction
from driftloop.features import OnlineFeatureReader, OnlineFeatures
from driftloop.settings import Settings
from tests.integration import serving_support as support
from tests.integration.monitor_support import apply_in_process


class CountingReader(OnlineFeatureReader):
    """The real reader, counting its calls and the rows each call asked for."""

    def __init__(self, reader: OnlineFeatureReader) -> None:
        super().__init__(reader.store, reader.service)
        self.calls: list[int] = []

    def read(self, rows: pd.DataFrame) -> OnlineFeatures:
        self.calls.append(len(rows))
        return super().read(rows)


@pytest.fixture(scope="module")
def active(tmp_path_factory: pytest.TempPathFactory) -> ActiveModel:
    root: Path = tmp_path_factory.mktemp("scoring")
    base = Settings(kafka_bootstrap_servers="127.0.0.1:1")
    with pytest.MonkeyPatch.context() as patch:
        # Feast's apply in this process: the unit tier starts no process (and a module
        # fixture runs before its guard is in place)
        patch.setattr(support, "apply_repo", apply_in_process)
        repo = support.feature_repo(base, root, "unit.")
    version = support.put_model(repo, support.fraud_features(repo), seed=5, threshold=0.5)
    slot = ModelSlot(repo)
    slot.apply(support.user_config(version))
    assert slot.active is not None
    return slot.active


def _transactions(n: int) -> list[Transaction]:
    return [
        Transaction.model_validate(
            support.transaction(i, customer=f"c{i % 25}", merchant=f"m{i % 12}", amount=5.0 + i)
        )
        for i in range(n)
    ]


def test_one_feature_read_per_batch(active):
    reader = CountingReader(active.reader)
    counted = dataclasses.replace(active, reader=reader)
    for size in (1, 7, 32):
        reader.calls.clear()
        scored = score_batch(counted, _transactions(size))
        assert len(scored) == size
        assert reader.calls == [size]


def test_a_batch_scores_as_its_transactions_one_by_one(active):
    reader = CountingReader(active.reader)
    counted = dataclasses.replace(active, reader=reader)
    txns = _transactions(30)  # customers c20..c24 and merchants m10, m11 are unknown
    together = score_batch(counted, txns, now=1e10)
    alone = [score_batch(counted, [t], now=1e10)[0] for t in txns]
    assert reader.calls == [30] + [1] * 30
    assert together == alone
    assert [s.unknown_customer for s in together] == [i % 25 >= 20 for i in range(30)]
    assert [s.unknown_merchant for s in together] == [i % 12 >= 10 for i in range(30)]
    assert len({s.score for s in together}) > 1  # the rows really differ
