"""train_model on a few days of simulated history, against the real Ray head and Feast.

The history, the champion and the weaker challenger are the session's shared worlds
(tests/integration/history_worlds.py); wall times of train_model are in bench/train_model.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from driftloop.models import ModelStore
from driftloop.profiles import REFERENCE_FEATURES, REFERENCE_SCORES, SCORE_COLUMN, deserialize
from driftloop.training import load_model_spec, train_model
from tests.integration.history_support import ROOT, WINDOW

# The longest test needs about 75 s: the first builds the shared history and trains the
# champion, the CLI test trains it again, fraud-lite runs a Ray Tune search.
pytestmark = pytest.mark.timeout(240)


def test_model_beats_the_baseline_and_is_stored_with_lineage(history, training_spec, champion):
    repo, spec, trained = history, training_spec, champion
    m, base = trained.metrics, trained.baseline_metrics
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
    assert meta.gate is not None and meta.gate.passed, meta.gate
    assert meta.request_schema is not None
    assert "customer_id" in meta.request_schema["properties"]  # type: ignore[operator]

    # Reference profiles for the monitor: raw training features and holdout scores.
    assert set(stored.references) == {REFERENCE_FEATURES, REFERENCE_SCORES}
    features_view = deserialize(stored.read_reference(REFERENCE_FEATURES))
    assert set(features_view.get_columns()) == set(features.names)
    counts = features_view.get_column("merchant_category").get_metric("counts").to_summary_dict()
    assert counts["n"] == trained.rows.train
    frequent = features_view.get_column("merchant_category").get_metric("frequent_items")
    assert frequent is not None  # categories profiled as strings, not codes
    scores_view = deserialize(stored.read_reference(REFERENCE_SCORES))
    score_counts = scores_view.get_column(SCORE_COLUMN).get_metric("counts").to_summary_dict()
    assert score_counts["n"] == trained.rows.holdout


def _env(repo) -> dict[str, str]:
    return {
        **os.environ,
        "DRIFTLOOP_STATE_DIR": str(repo.state_dir),
        "DRIFTLOOP_FEATURE_ENV": repo.feature_env,
        "DRIFTLOOP_FEATURE_DATA_URI": repo.feature_data,
        "DRIFTLOOP_MODEL_STORE_URI": repo.model_store,
    }


def test_same_window_and_seed_give_the_same_digest_through_the_cli(
    history, training_spec, champion, tmp_path
):
    """The CLI trains the champion's spec on its window again: the same digest, and the
    store still holds the champion alone (the same content is not stored twice)."""
    repo, spec, trained = history, training_spec, champion
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
    assert [v.version for v in ModelStore(repo.model_store).list(spec.name)] == [trained.version]


def test_model_show_answers_from_the_stored_metadata(history, champion):
    repo, trained = history, champion
    result = subprocess.run(
        [sys.executable, "-m", "driftloop", "model", "show", "latest", "--json"],
        cwd=ROOT, env=_env(repo), capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    card = json.loads(result.stdout)
    assert card["version"] == trained.version and card["sha256"] == trained.sha256
    types = {f["name"]: f["type"] for f in card["features"]}
    assert types["merchant_category"] == "categorical" and types["amount_to_mean_7d"] == "float"
    row = card["metrics"]["pr_auc"]
    assert row["model"] == pytest.approx(trained.metrics["pr_auc"])
    assert row["baseline"] == pytest.approx(trained.baseline_metrics["pr_auc"])
    assert {"xgboost", "python"} <= set(card["requires"])
    assert {"ray", "xgboost", "feast", "python"} <= set(card["trained_with"])
    assert card["output"]["threshold"] == pytest.approx(trained.threshold)
    assert card["request_schema"]["title"] == "Transaction"
    assert "amount" in card["request_schema"]["required"]
    assert card["gate"]["passed"] is True
    assert card["training_window"]["end"].startswith("2026-06-01")


def test_a_weaker_challenger_fails_the_gate_against_the_champion(champion, challenger):
    trained, result = champion, challenger.result
    assert result.champion_metrics is not None
    # The champion is scored on the challenger's own holdout: same rows, its own metrics.
    assert result.champion_metrics["rows"] == result.metrics["rows"]
    assert result.champion_metrics["pr_auc"] == pytest.approx(trained.metrics["pr_auc"], abs=1e-9)
    assert result.metrics["pr_auc"] < result.champion_metrics["pr_auc"]
    assert not result.gate.passed
    assert result.gate.champion_version == trained.version
    failed = [r for r in result.gate.reasons if r.startswith("FAIL")]
    assert any(trained.version in r and "PR-AUC" in r for r in failed), result.gate.reasons
    stored = challenger.store.get(result.model_name, result.version).metadata
    assert stored.gate == result.gate
    assert stored.metrics["champion_pr_auc"] == pytest.approx(result.champion_metrics["pr_auc"])


def test_a_second_model_needs_only_its_spec_and_feast_definitions(history, tmp_path):
    """fraud-lite: its own feature service, trainer and a Ray Tune search — no code. On
    the shared history; stored in a store of this test's own."""
    lite = load_model_spec(ROOT / "deploy" / "apps" / "fraud-lite" / "model.yaml")
    lines: list[str] = []
    store = ModelStore(str(tmp_path / "models"))
    result = train_model(lite, WINDOW, history, progress=lines.append, store=store)
    stored = store.get("fraud-lite", result.version)
    features = stored.read_features().names
    assert features == [
        "txn_count_1h", "txn_count_24h", "amount_mean_7d", "amount_max_7d",
        "amount_to_mean_7d", "is_foreign", "seconds_since_last_txn",
    ]  # fmt: skip
    assert stored.metadata.feature_service == "fraud_lite_v1"
    assert result.metrics["pr_auc"] > result.baseline_metrics["prior"] + 0.1, result.metrics
    search = stored.metadata.params["tune"]
    assert isinstance(search, dict)
    trials = search["trials"]
    assert isinstance(trials, list) and len(trials) == lite.tune.num_samples
    scores = [t["validation_pr_auc"] for t in trials if isinstance(t, dict)]
    assert search["best_score"] == pytest.approx(max(scores))  # type: ignore[type-var]
    best = search["best"]
    assert isinstance(best, dict) and set(best) == {"max_depth", "eta"}
    xgb = stored.metadata.params["xgboost"]
    assert isinstance(xgb, dict) and xgb["max_depth"] == best["max_depth"]
    # Progress came while it ran: rows, the search, boosting rounds, the stored version.
    assert lines[0].startswith("rows:")
    assert any(line.startswith("tuning:") for line in lines)
    assert any(line.startswith("round 20/60") for line in lines), lines
    assert lines[-1] == f"stored fraud-lite {result.version}"
