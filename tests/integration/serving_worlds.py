"""Session-wide worlds of the serving tests (fixtures, imported by conftest.py).

``serving_world``: ONE applied Feast repo (known customers and merchants online) and the
models every serving test scores with, built once. ``fraud_app``: ONE Serve application
of the fraud model on it, deployed once; a test reconfigures it (``user_config``: model
version, threshold) through :meth:`FraudApp.deploy` and the fixture puts the home
configuration back after the test. Tests that need different ServeArgs (an unreachable
Kafka, a SOCKS proxy, the shipped request limits) deploy a variant of their own.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from driftloop.models import FeatureSpec, ModelVersion
from driftloop.settings import Settings
from tests.integration import serving_support as support

__all__ = ["FraudApp", "ServingWorld", "fraud_app", "fraud_app_session", "serving_world"]

APP_KEY = uuid.uuid4().hex  # the shared app's API key, from its deployment args
APP_MAX_ITEMS = 16  # the shared app's /predict/batch limit


@dataclass(frozen=True)
class ServingWorld:
    """The feature repo's settings, fraud_v1's feature spec and the stored models: ``v1``
    (threshold 0.5), ``v2`` (0.4) and ``gone`` (0.4, its model file deleted)."""

    settings: Settings
    spec: FeatureSpec
    v1: ModelVersion
    v2: ModelVersion
    gone: ModelVersion


@pytest.fixture(scope="session")
def serving_world(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> ServingWorld:
    root = tmp_path_factory.mktemp("serving-world")
    repo = support.feature_repo(settings, root, settings.topic_prefix)
    spec = support.fraud_features(repo)
    v1 = support.put_model(repo, spec, seed=1, threshold=0.5)
    v2 = support.put_model(repo, spec, seed=2, threshold=0.4)
    gone = support.put_model(repo, spec, seed=3, threshold=0.4)
    Path(gone.model_uri).unlink()  # a version whose model file went missing
    support.connect_ray(repo)
    return ServingWorld(repo, spec, v1, v2, gone)


@dataclass
class FraudApp:
    """The shared application: ``home`` is the configuration it returns to after a test."""

    name: str
    url: str
    args: dict[str, Any]
    key: str
    max_items: int
    home: dict[str, Any]
    current: dict[str, Any] = field(default_factory=dict)

    @property
    def headers(self) -> dict[str, str]:
        return {"X-API-Key": self.key}

    def deploy(self, config: Mapping[str, Any]) -> None:
        """Reconfigure in place (same ServeArgs and options: only ``user_config`` changes)."""
        support.deploy(self.name, self.args, config)
        self.current = dict(config)

    def restore(self) -> None:
        if self.current != self.home:
            self.deploy(self.home)


@pytest.fixture(scope="session")
def fraud_app_session(serving_world: ServingWorld) -> Iterator[FraudApp]:
    from ray import serve

    name = support.app_name()
    args = support.serve_args(serving_world.settings, api_key=APP_KEY,
                              max_request_items=APP_MAX_ITEMS)  # fmt: skip
    app = FraudApp(name, f"{serving_world.settings.serve_url}/{name}", args, APP_KEY,
                   APP_MAX_ITEMS, support.user_config(serving_world.v1))  # fmt: skip
    try:
        app.deploy(app.home)
        yield app
    finally:
        serve.delete(name)  # only our own application


@pytest.fixture
def fraud_app(fraud_app_session: FraudApp) -> Iterator[FraudApp]:
    """The shared application serving v1; back on v1 (and no refusal) after the test."""
    fraud_app_session.restore()
    yield fraud_app_session
    fraud_app_session.restore()
