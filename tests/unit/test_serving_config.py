"""deploy/apps/fraud/serve.yaml against Ray's schema and the builder's arguments; the
model references and configuration a replica accepts; the prediction log's bound."""

from __future__ import annotations

import importlib
import time
from pathlib import Path
from types import FunctionType
from typing import Any, cast

import pytest
import yaml
from driftloop_serving import (
    FraudService,
    ModelConfig,
    PredictionLog,
    ServeArgs,
    build_app,
    locate,
)
from pydantic import ValidationError

from driftloop.events import Prediction
from driftloop.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
SERVE_YAML = ROOT / "deploy" / "apps" / "fraud" / "serve.yaml"
DIGEST = "ab" * 32
VERSION = f"sha256-{DIGEST[:16]}"


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(SERVE_YAML.read_text())
    return loaded


def test_serve_yaml_is_a_ray_serve_config_for_our_builder(raw):
    from ray.serve.schema import DeploymentSchema, ServeApplicationSchema, ServeDeploySchema

    config = ServeDeploySchema.model_validate(raw)
    assert config.http_options.host == "127.0.0.1"
    assert config.http_options.port == 8000
    [app] = config.applications
    assert (app.name, app.route_prefix, app.import_path) == (
        "fraud", "/fraud", "driftloop_serving:build_app",
    )  # fmt: skip
    [deployment] = app.deployments
    assert deployment.name == "FraudService"
    assert deployment.autoscaling_config is not None
    assert "num_replicas" not in raw["applications"][0]["deployments"][0]  # the autoscaler's
    assert deployment.max_ongoing_requests >= 1
    # Overload is refused at once (503), never queued without bound; nothing waits forever.
    assert deployment.max_queued_requests >= 1
    assert config.http_options.request_timeout_s is not None
    assert config.http_options.request_timeout_s > 0
    # Ray's schemas accept unknown keys (forward compatibility): a typo would be ignored.
    assert set(raw) <= set(ServeDeploySchema.model_fields)
    assert set(raw["applications"][0]) <= set(ServeApplicationSchema.model_fields)
    assert set(raw["applications"][0]["deployments"][0]) <= set(DeploymentSchema.model_fields)
    args = ServeArgs.model_validate(app.args)
    assert args.api_key is None, "an API key never goes into git"
    assert args.auth is None, "secure by default: the replicas' environment decides, key unless off"
    assert ModelConfig.model_validate(deployment.user_config).empty  # nothing promoted yet


def test_the_deployment_defaults_are_the_yaml_request_limits(raw):
    """Deployed without serve.yaml (tests, `serve run`), the same limits apply."""
    [deployment] = raw["applications"][0]["deployments"]
    assert FraudService.max_ongoing_requests == deployment["max_ongoing_requests"]
    assert FraudService.max_queued_requests == deployment["max_queued_requests"]


def test_ray_builds_the_app_from_the_yaml_args_as_serve_args(raw):
    from ray.serve import Application
    from ray.serve._private.api import call_user_app_builder_with_args_if_necessary

    module, attribute = raw["applications"][0]["import_path"].split(":")
    assert getattr(importlib.import_module(module), attribute) is build_app
    args = raw["applications"][0]["args"]
    builder = cast(FunctionType, build_app)  # what Ray imports from import_path
    app = call_user_app_builder_with_args_if_necessary(builder, args)
    assert isinstance(app, Application)
    [bound] = app._bound_deployment.init_args
    assert isinstance(bound, ServeArgs)
    assert bound.max_batch_size == args["max_batch_size"]
    with pytest.raises(ValidationError, match="max_batch_sise"):
        call_user_app_builder_with_args_if_necessary(builder, {"max_batch_sise": 8})


def test_serve_args_are_strict_and_override_settings(tmp_path):
    with pytest.raises(ValidationError, match="max_batch_size"):
        ServeArgs.model_validate({"max_batch_size": "8"})
    with pytest.raises(ValidationError, match="feature_env"):
        ServeArgs.model_validate({"feature_env": "prod"})
    args = ServeArgs.model_validate(
        {"topic_prefix": "t1.", "model_store_uri": str(tmp_path / "m"), "state_dir": str(tmp_path)}
    )
    s = args.settings()
    assert s.topic("predictions") == "t1.predictions"
    assert s.model_store == str(tmp_path / "m")
    assert s.state_dir == tmp_path
    assert ServeArgs().settings().topic_prefix == Settings().topic_prefix


def test_model_references():
    assert locate(f"models:/fraud/{VERSION}") == (None, "fraud", VERSION)
    assert locate(f"/srv/models/fraud/{VERSION}/") == ("/srv/models", "fraud", VERSION)
    assert locate(f"s3://bucket/models/fraud/{VERSION}") == ("s3://bucket/models", "fraud", VERSION)
    for bad in (f"fraud/{VERSION}", "models:/fraud", "models:/fraud/latest", "/srv/x"):
        with pytest.raises(ValueError):
            locate(bad)


def test_model_config_pairs_uri_and_digest():
    ok = ModelConfig.model_validate(
        {"model_uri": f"models:/fraud/{VERSION}", "model_digest": f"sha256:{DIGEST}"}
    )
    assert ok.model_digest == DIGEST and not ok.empty and ok.threshold is None
    assert ModelConfig.model_validate({}).empty
    cases = [
        ({"model_uri": f"models:/fraud/{VERSION}"}, "set together"),
        ({"model_digest": DIGEST}, "set together"),
        ({"model_uri": f"models:/fraud/{VERSION}", "model_digest": "cd" * 32}, "another file"),
        ({"model_uri": f"models:/fraud/{VERSION}", "model_digest": "xyz"}, "sha256 hex"),
        ({"threshold": 0.5}, "without a model"),
        ({"model_uri": f"models:/fraud/{VERSION}", "model_digest": DIGEST, "threshold": 2},
         "less than or equal"),
        ({"model_url": "x"}, "Extra inputs"),
    ]  # fmt: skip
    for raw, message in cases:
        with pytest.raises(ValidationError, match=message):
            ModelConfig.model_validate(raw)


def test_prediction_log_offer_never_blocks_and_counts_what_it_drops():
    # Not started: nothing drains the queue, so the bound is what this test sees.
    drops: list[tuple[str, int]] = []
    log = PredictionLog(
        Settings(kafka_bootstrap_servers="127.0.0.1:1"), capacity=3,
        on_drop=lambda reason, n: drops.append((reason, n)),
    )  # fmt: skip
    event = Prediction(
        request_id="r1", transaction_id="t1", model_name="fraud", model_version=VERSION,
        score=0.2, decision=False, threshold=0.5, latency_ms=1.0,
    )  # fmt: skip
    started = time.perf_counter()
    assert log.offer([event] * 10) == 7
    assert log.offer([event]) == 1
    assert time.perf_counter() - started < 0.05
    assert log.dropped == {"queue_full": 8}
    assert drops == [("queue_full", 7), ("queue_full", 1)]
    assert log.queued == 3 and not log.connected
    log.close()


def test_prediction_log_timeouts_and_proxy_are_checked():
    with pytest.raises(ValidationError, match="log_proxy_url"):
        ServeArgs.model_validate({"log_proxy_url": "http://proxy:3128"})
    with pytest.raises(ValidationError, match="log_delivery_timeout_ms"):
        ServeArgs.model_validate({"log_delivery_timeout_ms": 5_000})  # below linger's bound
    args = ServeArgs.model_validate(
        {"log_proxy_url": "socks5://127.0.0.1:1080", "log_delivery_timeout_ms": 6_000}
    )
    assert args.log_proxy_url == "socks5://127.0.0.1:1080"
    settings = Settings(kafka_bootstrap_servers="127.0.0.1:1")
    with pytest.raises(ValueError, match="delivery_timeout_ms"):
        PredictionLog(settings, linger_ms=500, delivery_timeout_ms=1_400)
