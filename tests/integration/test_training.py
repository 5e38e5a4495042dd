"""train_model on a few days of simulated history, against the real Ray head and Feast."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from driftloop.features import (
    SCHEMAS,
    apply_repo,
    customer_aggregates,
    merchant_stats,
    write_batch,
)
from driftloop.models import ModelStore, TrainingWindow
from driftloop.training import load_model_spec, train_model

ROOT = Path(__file__).resolve().parents[2]
END = datetime(2026, 6, 1, tzinfo=UTC)
# Labels arrive about three days late: of 8 days, about 5 are labelled by the window end.
WINDOW = TrainingWindow(start=datetime(2026, 5, 24, tzinfo=UTC), end=END)


@pytest.fixture(scope="module")
def repo(tmp_path_factory, base_settings):
    tmp = tmp_path_factory.mktemp("training")
    cli = Path(sys.executable).parent / "driftloop-simulator"
    subprocess.run(
        [str(cli), "backfill", "--days", "8", "--customers", "300", "--tx-per-day", "2000",
         "--fraud-rate", "0.02", "--end", "2026-06-01", "--out", str(tmp / "state" / "data")],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    settings = base_settings.model_copy(
        update={
            "state_dir": tmp / "state",
            "feature_env": "local-file",
            "feature_data_uri": str(tmp / "features"),
            "model_store_uri": str(tmp / "models"),
            "git_repo": str(ROOT),
        }
    )
    history = pd.read_parquet(tmp / "state" / "data" / "transactions.parquet")
    for name, frame in {
        "customer_aggregates": customer_aggregates(history, END),
        "merchant_stats": merchant_stats(history, END),
    }.items():
        write_batch(frame, f"{settings.feature_data}/{name}", "backfill", SCHEMAS[name])
    apply_repo(settings)
    return settings


@pytest.fixture(scope="module")
def spec():
    loaded = load_model_spec(ROOT / "deploy" / "apps" / "fraud" / "model.yaml")
    # A tiny data set: fewer rounds keep the test short; the rest is the shipped spec.
    trainer = loaded.trainer.model_copy(update={"num_boost_round": 120, "report_every": 40})
    return loaded.model_copy(update={"trainer": trainer})


@pytest.fixture(scope="module")
def trained(repo, spec):
    return train_model(spec, WINDOW, repo, num_workers=2, trigger_event_id="evt-test-1")


def test_model_beats_the_baseline_and_is_stored_with_lineage(repo, spec, trained):
    m, base = trained.metrics, trained.baseline_metrics
    summary = {"model": m, "baseline": base, "rows": trained.rows.model_dump(),
               "duration_s": trained.duration_s, "train_s": trained.train_s}  # fmt: skip
    print("\ntrain_model:", json.dumps(summary))
    assert m["pr_auc"] > base["prior"] + 0.2, (m, base)
    assert m["pr_auc"] >= base["pr_auc"] - 0.05, (m, base)
    assert m["roc_auc"] > 0.8
    assert trained.rows.train > trained.rows.validation > 0 and trained.rows.holdout > 0

    store = ModelStore(repo.model_store)
    stored = store.verify(spec.name, trained.version)
    assert stored.sha256 == trained.sha256
    meta = stored.metadata
    assert len(meta.git_sha) == 40 and isinstance(meta.git_dirty, bool)
    assert meta.feature_service == "fraud_v1"
    assert meta.feature_views_hash.startswith("sha256:")
    assert meta.data_hash.startswith("sha256:")
    assert meta.training_window == WINDOW
    assert meta.rows == trained.rows
    assert meta.trigger_event_id == "evt-test-1"
    assert meta.seed == spec.trainer.seed
    assert {"python", "ray", "xgboost", "feast"} <= set(meta.packages)
    assert meta.metrics["pr_auc"] == pytest.approx(m["pr_auc"])
    assert "baseline_pr_auc" in meta.metrics
    features = stored.read_features()
    assert "last_txn_unix" not in features.names
    assert {f.name: f.type for f in features.features}["merchant_category"] == "categorical"
    categorical = features.preprocessing["categorical"]
    assert isinstance(categorical, dict)
    vocab = categorical["merchant_category"]["vocabulary"]  # type: ignore[call-overload,index]
    assert isinstance(vocab, list) and len(vocab) > 1
    assert vocab == sorted(vocab)


def _env(repo) -> dict[str, str]:
    import os

    return {
        **os.environ,
        "DRIFTLOOP_STATE_DIR": str(repo.state_dir),
        "DRIFTLOOP_FEATURE_ENV": repo.feature_env,
        "DRIFTLOOP_FEATURE_DATA_URI": repo.feature_data,
        "DRIFTLOOP_MODEL_STORE_URI": repo.model_store,
    }


def test_same_window_and_seed_give_the_same_digest_through_the_cli(repo, spec, trained, tmp_path):
    import yaml

    spec_file = tmp_path / "model.yaml"
    spec_file.write_text(yaml.safe_dump(spec.model_dump(mode="json")))
    result = subprocess.run(
        [sys.executable, "-m", "driftloop", "train", "--spec", str(spec_file), "--end",
         "2026-06-01T00:00:00", "--window", "8d", "--workers", "2", "--json"],
        cwd=ROOT, env=_env(repo), capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    again = json.loads(result.stdout.strip().splitlines()[-1])
    assert again["sha256"] == trained.sha256
    assert again["version"] == trained.version
    assert len(ModelStore(repo.model_store).list(spec.name)) == 1


def test_model_show_answers_from_the_stored_metadata(repo, trained):
    result = subprocess.run(
        [sys.executable, "-m", "driftloop", "model", "show", "latest", "--json"],
        cwd=ROOT, env=_env(repo), capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    card = json.loads(result.stdout)
    assert card["version"] == trained.version and card["sha256"] == trained.sha256
    assert card["features"]["merchant_category"] == "categorical"
    assert card["metrics"]["pr_auc"] == pytest.approx(trained.metrics["pr_auc"])
    assert {"ray", "xgboost", "feast", "python"} <= set(card["packages"])
    assert card["training_window"]["end"].startswith("2026-06-01")
