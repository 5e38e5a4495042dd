"""What the topics and the model store say afterwards: every prediction and label read
back, v1 and v2 scored on the same post-drift rows, the counts reconciled."""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import pandas as pd
import pyarrow.parquet as pq

from driftloop.events import Event, Label, Prediction
from driftloop.settings import Settings

if TYPE_CHECKING:
    from driftloop.drift import WindowRecord

E = TypeVar("E", bound=Event)


def read_topic(settings: Settings, contract: type[E], timeout_s: float = 60) -> list[E]:
    """Every event of ``contract``'s topic, from the beginning to the end offsets seen
    when the read started."""
    import time

    from kafka import KafkaConsumer, TopicPartition

    topic = settings.topic(contract.topic)
    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        enable_auto_commit=False,
        group_id=None,
        max_poll_records=5000,
    )
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        out: list[E] = []
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < ends[tp] for tp in partitions):
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {topic} took longer than {timeout_s:g} s")
            for records in consumer.poll(timeout_ms=500).values():
                for r in records:  # a record may carry several (a batch of predictions)
                    out.extend(contract.decode(r.value))
        return out
    finally:
        consumer.close()


def end_offsets(settings: Settings, name: str) -> int:
    """Records ever written to a topic (the sum of its partitions' end offsets)."""
    from kafka import KafkaConsumer, TopicPartition

    topic = settings.topic(name)
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=None)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        return int(sum(consumer.end_offsets(partitions).values()))
    finally:
        consumer.close()


def scored_frame(predictions: list[Prediction], labels: list[Label]) -> pd.DataFrame:
    """One row per logged prediction: when, by which version in which role (a shadow's
    score answered nothing), score, decision, the features it used, and the label if it
    arrived."""
    truth = {label.transaction_id: label.is_fraud for label in labels}
    rows = [
        {
            "transaction_id": p.transaction_id,
            "scored_at": p.event_time,
            "model_version": p.model_version,
            "role": p.role,
            "score": p.score,
            "decision": p.decision,
            "is_fraud": truth.get(p.transaction_id),
            **{f"f.{k}": v for k, v in p.features.items()},
        }
        for p in predictions
    ]
    return pd.DataFrame(rows)


def answers(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows whose score answered the payment: a shadow's scores left out."""
    return frame[frame["role"] != "shadow"] if "role" in frame else frame


@dataclass(frozen=True)
class Comparison:
    """v1 and v2 scored on the same labelled rows that neither was trained on."""

    since: datetime
    rows: int
    positives: int
    pr_auc: dict[str, float]
    roc_auc: dict[str, float]
    recall: dict[str, float]
    curves: dict[str, tuple[list[float], list[float]]]


def compare_models(
    settings: Settings, model: str, versions: dict[str, str], frame: pd.DataFrame, since: datetime
) -> Comparison:
    """Score the labelled rows scored after ``since`` with every version in ``versions``
    (label → version id), each at its own threshold."""
    import numpy as np
    from sklearn.metrics import (  # type: ignore[import-untyped]
        average_precision_score,
        precision_recall_curve,
        roc_auc_score,
    )

    from driftloop.models import LoadedModel, ModelStore

    frame = answers(frame)
    rows = frame[(frame["scored_at"] >= pd.Timestamp(since)) & frame["is_fraud"].notna()]
    y = rows["is_fraud"].astype(bool).to_numpy()
    store = ModelStore.from_settings(settings)
    pr, roc, recall, curves = {}, {}, {}, {}
    for label, version in versions.items():
        loaded = LoadedModel.load(store.get(model, version))
        features = rows[[f"f.{n}" for n in loaded.features.names]]
        features.columns = pd.Index(loaded.features.names)
        scores = loaded.predict(features.reset_index(drop=True))
        threshold = loaded.threshold if loaded.threshold is not None else 0.5
        if 0 < y.sum() < len(y):
            pr[label] = float(average_precision_score(y, scores))
            roc[label] = float(roc_auc_score(y, scores))
            precision, rec, _ = precision_recall_curve(y, scores)
            curves[label] = (rec.tolist(), precision.tolist())
        recall[label] = float(((scores >= threshold) & y).sum() / max(1, int(y.sum())))
    return Comparison(since, len(rows), int(np.sum(y)), pr, roc, recall, curves)


PR_AUC_SHARE = 0.85
"""Healed: v2's post-drift PR-AUC reaches this share of v1's PR-AUC before the drift..."""
RECALL_SHARE = 0.8
"""...and v2's post-drift recall at its threshold this share of v1's before the drift."""


@dataclass(frozen=True)
class Healing:
    """Whether the model serving after the drift is good again: v1 before the drift (its
    own holdout) against v2 after it (labelled post-drift rows v2 was not trained on)."""

    v1_pr_auc: float
    v1_recall: float
    v2_pr_auc: float
    v2_recall: float
    windows_after_v2: int  # the monitor's data windows of v2
    events_after_v2: int  # drift events about v2
    v1_live: LiveFigures | None = None
    """v1 on the traffic before the drift, with the features it was served: the same
    footing as v2's figures (its holdout's are offline point-in-time features)."""

    @property
    def pr_auc_share(self) -> float:
        return self.v2_pr_auc / self.v1_pr_auc if self.v1_pr_auc > 0 else float("nan")

    @property
    def recall_share(self) -> float:
        return self.v2_recall / self.v1_recall if self.v1_recall > 0 else float("nan")

    @property
    def healed(self) -> bool:
        return self.pr_auc_share >= PR_AUC_SHARE and self.recall_share >= RECALL_SHARE

    def line(self) -> str:
        verdict = "healed" if self.healed else "NOT healed"
        live = ""
        if self.v1_live is not None:
            v1 = self.v1_live
            live = (
                f"; against v1 live before the drift ({v1.positives} fraud, served features: "
                f"PR-AUC {v1.pr_auc:.3f}, recall {v1.recall:.2f}) "
                f"{_share(self.v2_pr_auc, v1.pr_auc):.0%} and "
                f"{_share(self.v2_recall, v1.recall):.0%}"
            )
        return (
            f"{verdict}: PR-AUC v1 before {self.v1_pr_auc:.3f} → v2 after "
            f"{self.v2_pr_auc:.3f} ({self.pr_auc_share:.0%}, goal {PR_AUC_SHARE:.0%}); recall "
            f"{self.v1_recall:.2f} → {self.v2_recall:.2f} ({self.recall_share:.0%}, goal "
            f"{RECALL_SHARE:.0%}){live}; {self.events_after_v2} drift event(s) in "
            f"{self.windows_after_v2} window(s) of v2"
        )


def _share(after: float, before: float) -> float:
    return after / before if before > 0 else float("nan")


@dataclass(frozen=True)
class LiveFigures:
    """A version's live figures on labelled traffic: its logged scores and decisions."""

    rows: int
    positives: int
    pr_auc: float
    recall: float


def live_figures(frame: pd.DataFrame, version: str, until: datetime) -> LiveFigures | None:
    """``version``'s PR-AUC and recall at its threshold on the labelled rows it scored
    before ``until``, from what it logged; None without both classes."""
    from sklearn.metrics import average_precision_score

    frame = answers(frame)
    rows = frame[
        (frame["model_version"] == version)
        & (frame["scored_at"] < pd.Timestamp(until))
        & frame["is_fraud"].notna()
    ]
    y = rows["is_fraud"].astype(bool).to_numpy()
    if not 0 < y.sum() < len(y):
        return None
    decided = rows["decision"].astype(bool).to_numpy()
    return LiveFigures(
        rows=len(rows),
        positives=int(y.sum()),
        pr_auc=float(average_precision_score(y, rows["score"].to_numpy())),
        recall=float(decided[y].mean()),
    )


def healing(
    v1_metrics: dict[str, float],
    comparison: Comparison,
    windows_after_v2: int,
    events_after_v2: int,
    v1_live: LiveFigures | None = None,
) -> Healing:
    return Healing(
        v1_pr_auc=v1_metrics.get("pr_auc", float("nan")),
        v1_recall=v1_metrics.get("recall_at_threshold", float("nan")),
        v2_pr_auc=comparison.pr_auc.get("v2", float("nan")),
        v2_recall=comparison.recall.get("v2", float("nan")),
        windows_after_v2=windows_after_v2,
        events_after_v2=events_after_v2,
        v1_live=v1_live,
    )


def _read_only(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True)


def _checkpointed(path: Path, topic: str) -> int:
    """The next offsets of ``topic`` a service's SQLite checkpoint holds, summed."""
    with closing(_read_only(path)) as db:
        row = db.execute(
            "SELECT sum(next_offset) FROM offsets WHERE topic = ?", (topic,)
        ).fetchone()
        return int(row[0] or 0)


@dataclass(frozen=True)
class Position:
    """How far a consumer has durably got: the offsets its checkpoint holds (summed over
    partitions) and the rows its effects hold."""

    consumed: int
    rows: int
    open_rows: int = 0


def stream_position(settings: Settings) -> Position:
    """The stream service: transactions checkpointed, feature rows in its offline files
    (one per transaction in order, two for a late one)."""
    from driftloop.features import list_batches

    path = settings.state_dir / "stream" / "checkpoint.sqlite"
    consumed = _checkpointed(path, settings.topic("transactions")) if path.exists() else 0
    directory = f"{settings.feature_data}/customer_aggregates"
    files = [f"{directory}/{name}.parquet" for name in list_batches(directory)]
    written = sum(pq.ParquetFile(f).metadata.num_rows for f in files if "/stream-" in f)
    return Position(consumed, written)


def monitor_position(settings: Settings, model: str) -> Position:
    """The monitor: predictions checkpointed, rows in its closed windows (the audit
    records) and rows in its open windows."""
    from driftloop.drift import AuditStore

    root = settings.state_dir / "monitor"
    path = root / model / "checkpoint.sqlite"
    consumed = open_rows = 0
    if path.exists():
        consumed = _checkpointed(path, settings.topic("predictions"))
        with closing(_read_only(path)) as db:
            open_rows = int(db.execute("SELECT count(*) FROM window_rows").fetchone()[0])
    closed = sum(r.row_count for r in AuditStore(root, model).records("data"))
    return Position(consumed, closed, open_rows)


def skew_summary(records: Sequence[WindowRecord]) -> str:
    """What the monitor's skew checks found over the run: how many data windows were
    checked, and each feature served differently from its offline point-in-time value in
    how many of them ("" when no window was checked)."""
    checked = [
        r.skew for r in records if r.kind == "data" and r.skew is not None and r.skew.compared
    ]
    if not checked:
        return ""
    counts = Counter(column for skew in checked for column in skew.skewed)
    found = ", ".join(f"{c} ({n})" for c, n in counts.most_common()) or "none"
    rows = sum(skew.compared for skew in checked)
    return (
        f"{len(checked)} windows checked ({rows} payments, served vs offline point-in-time "
        f"features); skewed in windows: {found}"
    )
