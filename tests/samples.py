"""One valid example of every event contract, shared by unit and integration tests."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime, timedelta

from driftloop.events import (
    ColumnDrift,
    DeadLetter,
    DriftEvent,
    Event,
    Label,
    Prediction,
    PredictionBatch,
    Transaction,
    Window,
    WorkflowEvent,
)
from driftloop.models import Lineage, RowCounts, TrainingWindow


def sample_events(tag: str | None = None) -> list[Event]:
    tag = tag or uuid.uuid4().hex[:8]
    t0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    return [
        Transaction(
            transaction_id=f"t-{tag}",
            customer_id="c-17",
            merchant_id="m-3",
            amount=42.5,
            currency="EUR",
            merchant_category="electronics",
            channel="online",
            country="DE",
            card_country="DE",
            device_id="d-1",
            event_time=t0,
        ),
        Label(transaction_id=f"t-{tag}", is_fraud=True, event_time=t0 + timedelta(days=3)),
        Prediction(
            request_id=f"r-{tag}",
            transaction_id=f"t-{tag}",
            model_name="fraud",
            model_version="sha256-abc",
            score=0.91,
            decision=True,
            threshold=0.5,
            features={"amount": 42.5, "channel": "online", "txn_count_1h": 3},
            latency_ms=4.2,
            event_time=t0,
        ),
        PredictionBatch.of(
            [
                Prediction(
                    request_id=f"rb-{tag}",
                    transaction_id=f"t-{tag}-{i}",
                    model_name="fraud",
                    model_version="sha256-abc",
                    score=0.1 * i,
                    decision=False,
                    threshold=0.5,
                    features={"amount": 10.0 + i, "channel": "pos"},
                    latency_ms=2.0,
                    event_time=t0 + timedelta(seconds=i),
                    role=role,
                )
                for i, role in enumerate(("serving", "shadow", "canary"))
            ]
        ),
        DriftEvent(
            model_name="fraud",
            model_version=f"v-{tag}",
            window=Window(start=t0, end=t0 + timedelta(minutes=10), row_count=5000),
            reference_profile="file:///models/v1/reference.bin",
            columns=[
                ColumnDrift(
                    column="amount",
                    algorithm="ks",
                    statistic=0.31,
                    p_value=0.0001,
                    category="DRIFT",
                )
            ],
        ),
        WorkflowEvent(
            run_id=f"run-{tag}",
            workflow="driftloop-retrain",
            model_name="fraud",
            step="train",
            phase="succeeded",
            trigger_event_id="e-1",
        ),
        DeadLetter(
            source_topic="driftloop.transactions",
            partition=0,
            offset=7,
            consumer_group=f"g-{tag}",
            reason="validation failed for amount",
            value_b64=base64.b64encode(b"{bad").decode(),
        ),
    ]


def sample_lineage(seed: int, threshold: float, service: str = "fraud_v1") -> Lineage:
    """The lineage of a small test model stored without a training run (seven days up to
    2026-06-01, 600 rows): what the model store and a promotion need to record."""
    end = datetime(2026, 6, 1, tzinfo=UTC)
    return Lineage(
        git_sha="0" * 40, git_dirty=False, feature_service=service,
        feature_views_hash="sha256:" + "1" * 64,
        training_window=TrainingWindow(start=end - timedelta(days=7), end=end),
        rows=RowCounts(train=420, validation=90, holdout=90), data_hash=f"sha256:{seed:064d}",
        params={"max_depth": 3}, metrics={"threshold": threshold, "pr_auc": 0.5}, seed=seed,
    )  # fmt: skip
