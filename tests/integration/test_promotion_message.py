"""The promotion commit's message, section by section, as ``promote`` writes it into a
real git repository from a real model store and the monitor's real window record."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from driftloop.drift import AuditStore, ColumnRecord, WindowRecord
from driftloop.gitops import Git, promote
from driftloop.models import Feature, FeatureSpec, Lineage, ModelStore, RowCounts, TrainingWindow
from driftloop.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
END = datetime(2026, 6, 1, tzinfo=UTC)
EVENT = "drift-0123456789abcdef"


def _booster() -> bytes:
    import xgboost

    rng = np.random.default_rng(5)
    x = rng.normal(size=(200, 2))
    matrix = xgboost.DMatrix(x, label=(x[:, 0] > 0).astype(int), feature_names=["a", "b"])
    return bytes(
        xgboost.train({"seed": 5, "nthread": 1}, matrix, num_boost_round=3).save_raw("json")
    )


@pytest.fixture
def world(tmp_path: Path) -> tuple[Settings, str, Path]:
    repo = tmp_path / "deploy-repo"
    (repo / "deploy/apps/fraud").mkdir(parents=True)
    text = (ROOT / "deploy/apps/fraud/serve.yaml").read_text()
    (repo / "deploy/apps/fraud/serve.yaml").write_text(text)
    git = Git(repo)
    git.run("init", "--quiet", "--initial-branch", "main")
    git.run("add", ".")
    git.run("commit", "--quiet", "-m", "deploy: fraud")
    settings = Settings(
        state_dir=tmp_path / "state", model_store_uri=str(tmp_path / "models"),
        git_repo=str(repo), deploy_dir=repo / "deploy",
    )  # fmt: skip
    lineage = Lineage(
        git_sha="a" * 40, git_dirty=False, feature_service="fraud_v1",
        feature_views_hash="sha256:" + "f" * 64,
        training_window=TrainingWindow(start=END - timedelta(days=7), end=END),
        rows=RowCounts(train=700, validation=150, holdout=150), data_hash="sha256:" + "d" * 64,
        seed=5,
    )  # fmt: skip
    spec = FeatureSpec(features=[Feature(name="a", type="float"), Feature(name="b", type="float")])
    stored = ModelStore(settings.model_store).put(
        "fraud", _booster(), filename="model.json", features=spec, lineage=lineage
    )
    return settings, stored.version, repo


EVALUATION: dict[str, Any] = {
    "metrics": {"pr_auc": 0.8123, "roc_auc": 0.9345, "rows": 150},
    "champion": {"pr_auc": 0.6011, "roc_auc": 0.8812, "rows": 150},
    "baseline": {"pr_auc": 0.05, "roc_auc": 0.5, "rows": 150},
    "champion_version": "sha256-00000000000000aa",
    "gate": {"passed": True, "reasons": ["pr_auc 0.8123 >= champion 0.6011 - 0.01"]},
}


def _record(reference: str) -> WindowRecord:
    def column(name: str, stat: float, p: float, category: Any) -> ColumnRecord:
        return ColumnRecord(
            column=name, algorithm="ks", statistic=stat, p_value=p, p_adjusted=min(1, p * 3),
            effect=stat, min_effect=0.1, category=category,
        )  # fmt: skip

    return WindowRecord(
        kind="data", model="fraud", version="sha256-00000000000000aa",
        start=END, end=END + timedelta(minutes=10), row_count=5000, verdict="drift", streak=2,
        event_id=EVENT, reference_profile=reference,
        columns=[
            column("amount", 0.4321, 0.00012, "DRIFT"),
            column("hour_of_day", 0.1502, 0.0301, "POSSIBLE_DRIFT"),
            column("txn_count_24h", 0.0201, 0.71, "NO_DRIFT"),
        ],
    )  # fmt: skip


def _message(repo: Path) -> str:
    return Git(repo).run("log", "-1", "--format=%B", "main").rstrip("\n") + "\n"


def test_the_message_carries_each_section_of_the_record(world):
    settings, version, repo = world
    # the monitor records the champion's reference profile where its store keeps it
    reference = f"{settings.model_store}/fraud/sha256-00000000000000aa/reference/features.bin"
    AuditStore(settings.state_dir / "monitor", "fraud").write(_record(reference))
    done = promote(settings, "fraud", version, evaluation=EVALUATION,
                   trigger_event_id=EVENT, reason="drift")  # fmt: skip
    message = _message(repo)
    assert done.message == message
    lines = message.splitlines()
    assert lines[0] == f"Promote fraud {version} (drift)"
    assert f"Why: drift; triggered by event {EVENT}" in lines
    assert "Replaces: nothing (first version)" in lines

    # Drift evidence: kind, verdict, window, drifted columns with statistic and p-values.
    evidence = message[message.index("Drift evidence:") : message.index("Holdout metrics")]
    assert f"Drift evidence: event {EVENT}" in evidence
    assert "kind data_drift, verdict drift (2 windows in a row), on fraud sha256-" in evidence
    assert "window 2026-06-01T00:00:00+00:00 .. 2026-06-01T00:10:00+00:00 (5000 rows)" in evidence
    assert "2 of 3 columns drifted:" in evidence
    amount = next(x for x in evidence.splitlines() if x.split()[:1] == ["amount"])
    assert amount.split() == ["amount", "ks", "0.4321", "0.00012", "0.00036", "0.4321", "DRIFT"]
    hour = next(x for x in evidence.splitlines() if x.split()[:1] == ["hour_of_day"])
    assert hour.split()[-1] == "POSSIBLE_DRIFT" and "0.0301" in hour.split()
    assert evidence.index("amount") < evidence.index("hour_of_day")  # the worst first
    assert "txn_count_24h" not in evidence  # a column that did not drift is not listed
    assert "reference: models:/fraud/sha256-00000000000000aa/reference/features.bin" in evidence

    # Champion and challenger metrics, and the gate.
    assert "Holdout metrics (champion: sha256-00000000000000aa):" in lines
    pr_auc = next(x for x in lines if x.split()[:1] == ["pr_auc"])
    assert pr_auc.split() == ["pr_auc", "0.8123", "0.6011", "0.0500"]
    assert "Gate: passed" in lines and "    pr_auc 0.8123 >= champion 0.6011 - 0.01" in lines

    # Data window, feature service, lineage pointer, and the trailers machines read.
    assert (
        "Data window: 2026-05-25T00:00:00+00:00 .. 2026-06-01T00:00:00+00:00 "
        f"(700 train / 150 validation / 150 holdout rows, data sha256:{'d' * 64})"
    ) in lines
    assert f"Features: fraud_v1 (sha256:{'f' * 64})" in lines
    assert f"Trained from: {'a' * 40}" in lines
    assert f"Lineage: models:/fraud/{version}/metadata.json" in lines
    # git names the store's parts by the store scheme, never by this machine's paths
    assert str(settings.model_store) not in message and str(settings.state_dir) not in message
    sha256 = ModelStore(settings.model_store).get("fraud", version).sha256
    assert lines[-4:] == [
        "Model: fraud", f"Version: {version}", f"Sha256: {sha256}", f"Trigger-Event: {EVENT}",
    ]  # fmt: skip


def test_an_event_whose_record_this_process_cannot_read_is_named_and_said_so(world):
    settings, version, repo = world
    promote(settings, "fraud", version, trigger_event_id=EVENT, reason="drift")
    message = _message(repo)
    assert f"Drift evidence: event {EVENT}; its window record was not found by the" in message
    assert str(settings.state_dir.absolute()) not in message
    assert "columns drifted" not in message and f"Trigger-Event: {EVENT}" in message
