"""A commit the sync service cannot apply is recorded once as failed and never raised: a
serve.yaml that is not YAML, one that is not a mapping, a model file whose bytes no longer
match the digest git declares. Real git repositories and a real model store; no Ray is
reached (every failure here comes before the dashboard is asked anything)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from driftloop_sync import SyncService, SyncSettings

from driftloop.gitops import Git, read_state, set_model
from driftloop.models import Feature, FeatureSpec, Lineage, ModelStore, RowCounts, TrainingWindow

# about 3x what it needs: git and a model store on disk, well under a second a test
pytestmark = pytest.mark.timeout(15)

ROOT = Path(__file__).resolve().parents[2]
SERVE_YAML = "deploy/apps/fraud/serve.yaml"
CLOSED_PORT = "http://127.0.0.1:9"  # nothing listens there


def _commit(repo: Path, text: str, message: str) -> str:
    (repo / SERVE_YAML).write_text(text)
    git = Git(repo)
    git.run("add", SERVE_YAML)
    git.run("commit", "--quiet", "-m", message)
    return git.rev("HEAD")


@pytest.fixture
def world(tmp_path: Path) -> tuple[SyncService, Path]:
    repo = tmp_path / "deploy-repo"
    (repo / "deploy/apps/fraud").mkdir(parents=True)
    Git(repo).run("init", "--quiet", "--initial-branch", "main")
    _commit(repo, (ROOT / SERVE_YAML).read_text(), "deploy: fraud")
    settings = SyncSettings(
        state_dir=tmp_path / "state", model_store_uri=str(tmp_path / "models"),
        git_repo=str(repo), ray_dashboard_url=CLOSED_PORT, sync_metrics_port=0,
    )  # fmt: skip
    return SyncService(settings), repo


def _errors(service: SyncService) -> float:
    return float(service.metrics.errors._value.get())


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("applications:\n  - name: fraud\n   route_prefix: /fraud\n", "is not valid YAML"),
        ("- just\n- a list\n", "is not a mapping"),
    ],
)
def test_a_malformed_serve_yaml_is_recorded_once_and_not_tried_again(world, text, expected):
    service, repo = world
    bad = _commit(repo, text, "a broken serve.yaml")
    state = service.reconcile()  # no exception: the pass is recorded
    assert state.failed_sha == bad and state.git_sha == bad
    assert expected in (state.last_error or "") and not state.last_error_transient
    saved = read_state(service.settings)
    assert saved is not None and saved.failed_sha == bad and saved.last_error == state.last_error
    assert _errors(service) == 1

    # The next pass sees the same head and does not compose it again.
    def never(sha: str) -> dict[str, dict[str, Any]]:
        raise AssertionError(f"{sha} was read again")

    service.source.serve_configs = never
    again = service.reconcile()
    assert again.failed_sha == bad and _errors(service) == 1

    # A new service (supervisord's restart) reads the record and does not retry either.
    restarted = SyncService(service.settings)
    restarted.reconcile()
    assert restarted.state.failed_sha == bad and _errors(restarted) == 0

    # A good commit gets past every config check; the only error left is the dashboard's
    # (nothing listens), which is retried next interval and leaves the failed sha alone.
    good = _commit(repo, (ROOT / SERVE_YAML).read_text(), "fix serve.yaml")
    state = restarted.reconcile()
    assert state.git_sha == good and state.failed_sha == bad
    assert state.last_error_transient and "cannot read Serve" in (state.last_error or "")
    assert _errors(restarted) == 0


def _put(store: ModelStore, seed: int) -> tuple[str, str, Path]:
    import xgboost

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(200, 2))
    matrix = xgboost.DMatrix(x, label=(x[:, 0] > 0).astype(int), feature_names=["a", "b"])
    booster = xgboost.train({"seed": seed, "nthread": 1}, matrix, num_boost_round=3)
    end = datetime(2026, 6, 1, tzinfo=UTC)
    lineage = Lineage(
        git_sha="0" * 40, git_dirty=False, feature_service="fraud_v1",
        feature_views_hash="sha256:x",
        training_window=TrainingWindow(start=end - timedelta(days=7), end=end),
        rows=RowCounts(train=1, validation=1, holdout=1), data_hash="sha256:y", seed=seed,
    )  # fmt: skip
    spec = FeatureSpec(features=[Feature(name="a", type="float"), Feature(name="b", type="float")])
    stored = store.put("fraud", bytes(booster.save_raw("json")), filename="model.json",
                       features=spec, lineage=lineage)  # fmt: skip
    return stored.version, stored.sha256, Path(store.uri) / "fraud" / stored.version


def test_a_model_file_corrupted_in_the_store_is_refused_before_anything_is_applied(world):
    service, repo = world
    version, digest, directory = _put(ModelStore.from_settings(service.settings), seed=3)
    model_file = directory / "model.json"
    model_file.write_bytes(model_file.read_bytes().replace(b'"', b"'", 1))  # metadata intact
    text = set_model((ROOT / SERVE_YAML).read_text(), "fraud", version, digest)
    sha = _commit(repo, text, "promote a model whose file is damaged")
    state = service.reconcile()
    assert state.failed_sha == sha and not state.last_error_transient
    assert "sha256 mismatch" in (state.last_error or ""), state.last_error
    assert str(model_file) in (state.last_error or "")
