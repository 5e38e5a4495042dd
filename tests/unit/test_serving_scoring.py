"""Scoring a batch with a real model and a real (SQLite) Feast online store: one read per
feature view per batch on its distinct keys, whatever its size, and the same scores and
logged features as one at a time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from driftloop_serving import ActiveModel, ModelSlot

from driftloop.events import Prediction, Transaction
from driftloop.settings import Settings
from tests.integration import serving_support as support
from tests.integration.monitor_support import apply_in_process


class CountingStore:
    """Feast's online store of a plan, counting its reads and the keys each asked for."""

    def __init__(self, online: Any) -> None:
        self.online = online
        self.calls: list[tuple[str, int]] = []

    def online_read(self, config: Any, table: Any, keys: list[Any], names: Any) -> Any:
        self.calls.append((table.name, len(keys)))
        return self.online.online_read(config, table, keys, names)


def _counted(active: ActiveModel) -> CountingStore:
    counting = CountingStore(active.plan.online._online)
    active.plan.online._online = counting  # type: ignore[assignment]  # a wrapper, same calls
    return counting


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


def test_one_read_per_view_per_batch_on_distinct_keys(active):
    store = _counted(active)
    try:
        for size in (1, 7, 32):
            store.calls.clear()
            scored = active.score(_transactions(size))
            assert len(scored) == size
            distinct = min(size, 25), min(size, 12)  # customers c0..c24, merchants m0..m11
            assert store.calls == [("customer_aggregates", distinct[0]),
                                   ("merchant_stats", distinct[1])]  # fmt: skip
    finally:
        active.plan.online._online = store.online


def test_a_batch_scores_as_its_transactions_one_by_one(active):
    txns = _transactions(30)  # customers c20..c24 and merchants m10, m11 are unknown
    batch = active.score(txns, now=1e10)
    together = batch.rows(active.threshold)
    alone = [active.score([t], now=1e10) for t in txns]
    assert together == [one.rows(active.threshold)[0] for one in alone]
    assert [batch.features(i) for i in range(30)] == [one.features(0) for one in alone]
    assert [s.unknown_customer for s in together] == [i % 25 >= 20 for i in range(30)]
    assert [s.unknown_merchant for s in together] == [i % 12 >= 10 for i in range(30)]
    assert len({s.score for s in together}) > 1  # the rows really differ


def test_the_logged_predictions_are_the_events_validation_makes(active):
    """The prediction log's events are built without validation (``Prediction.made``)
    from a batch's columns (``features_of``): each equals the event pydantic validates
    from the same fields, types included (an integer feature stays an int)."""
    from driftloop_serving._service import FraudServiceImpl, _Item, _Part

    txns = _transactions(30)  # with unknown customers and merchants: null features
    batch = active.score(txns, now=1e10)
    rows = [0, 3, 4, 21, 22, 29]  # a part: some rows of the batch, as a canary's
    every = batch.features_of(range(30))
    assert batch.features_of(rows) == [every[i] for i in rows]  # a part's rows, as chosen
    items = [_Item(t, f"req-{i}", started=100.0) for i, t in enumerate(txns)]
    for role in ("serving", "shadow", "canary"):
        part = _Part(active, batch, rows, role)
        made = FraudServiceImpl._predictions(items, part, scored_at=100.25)
        assert [p.transaction_id for p in made] == [txns[i].transaction_id for i in rows]
        for p in made:
            validated = Prediction.model_validate(p.model_dump())
            assert validated == p
            assert validated.event_id == p.event_id != ""
            assert {k: type(v) for k, v in validated.features.items()} == {
                k: type(v) for k, v in p.features.items()
            }
        assert {p.latency_ms for p in made} == {250.0}
    assert any(v is None for p in made for v in p.features.values())


def test_scores_are_counted_in_their_bands():
    """A batch's scores go to ``driftloop_serving_scores`` by band (score <= the band's
    edge, above the edge below), in one call per band (Prometheus registry here)."""
    import numpy as np
    from driftloop_serving._metrics import SCORES, ServingMetrics

    metrics = ServingMetrics.create(ray=False)
    metrics.count_scores(np.array([0.0, 0.01, 0.0100001, 0.5, 0.5, 0.99, 1.0, 0.3]))
    metrics.count_scores(np.array([0.97]))

    def count(band: str) -> float | None:
        return metrics.registry.get_sample_value("driftloop_serving_scores_total", {"band": band})

    assert {f"{edge:g}": count(f"{edge:g}") for edge in SCORES} == {
        "0.01": 2.0, "0.05": 1.0, "0.1": None, "0.2": None, "0.3": 1.0, "0.4": None,
        "0.5": 2.0, "0.6": None, "0.7": None, "0.8": None, "0.9": None, "0.95": None,
        "0.99": 2.0, "1": 1.0,
    }  # fmt: skip
