"""Session-wide worlds of the training and retraining tests (fixtures, imported by
conftest.py).

Built once per session and shared: ONE simulated history with its Feast features applied
(:func:`history`), ONE champion trained on it by Ray Train (:func:`champion`) and ONE
weaker challenger judged against that champion (:func:`challenger`). The challenger is
stored in a store of its own (a copy of the shared one), so the shared store holds the
champion alone — ``latest`` is the champion, and a test that trains the champion's spec
again can see that nothing new was stored. Tests write what they make (runs, other models,
deploy repositories) under paths of their own.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from driftloop.models import ModelStore
from driftloop.settings import Settings
from driftloop.training import ModelSpec, TrainResult, load_model_spec, train_model
from tests.integration.history_support import ROOT, WINDOW, simulated_history

__all__ = ["Challenger", "challenger", "champion", "history", "training_spec"]


@pytest.fixture(scope="session")
def history(tmp_path_factory: pytest.TempPathFactory, base_settings: Settings) -> Settings:
    """Settings of the shared world: eight days of simulated history ending at ``END``,
    its feature tables written and the Feast repo applied; state, features and models
    under one temporary directory; git is this repository (for the lineage's git SHA)."""
    return simulated_history(base_settings, tmp_path_factory.mktemp("history"), git_repo=str(ROOT))


@pytest.fixture(scope="session")
def training_spec() -> ModelSpec:
    """The shipped fraud spec with fewer boosting rounds (a tiny data set)."""
    loaded = load_model_spec(ROOT / "deploy" / "apps" / "fraud" / "model.yaml")
    trainer = loaded.trainer.model_copy(update={"num_boost_round": 120, "report_every": 40})
    return loaded.model_copy(update={"trainer": trainer})


@pytest.fixture(scope="session")
def champion(history: Settings, training_spec: ModelSpec) -> TrainResult:
    """The champion: ``training_spec`` on :data:`WINDOW`, two Ray Train workers, stored in
    the shared store (and the only ``fraud`` version there)."""
    return train_model(training_spec, WINDOW, history, num_workers=2, trigger_event_id="evt-test-1")


@dataclass(frozen=True)
class Challenger:
    result: TrainResult
    store: ModelStore  # the copy of the shared store it was judged and stored in


@pytest.fixture(scope="session")
def challenger(
    tmp_path_factory: pytest.TempPathFactory,
    history: Settings,
    training_spec: ModelSpec,
    champion: TrainResult,
) -> Challenger:
    """A deliberately weak model (depth 1, 3 rounds) trained on the champion's window and
    judged against the champion, in a copy of the shared store."""
    copy = tmp_path_factory.mktemp("challenger") / "models"
    shutil.copytree(Path(history.model_store), copy)
    store = ModelStore(str(copy))
    weak_params = {**training_spec.trainer.params, "max_depth": 1, "eta": 0.01}
    weak = training_spec.model_copy(
        update={"trainer": training_spec.trainer.model_copy(
            update={"num_boost_round": 3, "report_every": 3, "params": weak_params})}
    )  # fmt: skip
    result = train_model(
        weak, WINDOW, history, num_workers=1, champion=champion.version, store=store
    )
    return Challenger(result, store)
