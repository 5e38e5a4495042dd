"""The fraud model on Ray Serve: ``build_app(ServeArgs)`` for ``deploy/apps/fraud/serve.yaml``.

Ray imports this package by the config's ``import_path``; other services never import it.
Modules whose names start with ``_`` are private.
"""

from driftloop.apikey import KEY_ENV as API_KEY_ENV
from driftloop_serving._app import build_app
from driftloop_serving._auth import ApiKeyMissing
from driftloop_serving._config import ModelConfig, ServeArgs, customer_bucket, in_canary, locate
from driftloop_serving._gate import BATCH_FULL
from driftloop_serving._log import PredictionLog
from driftloop_serving._scoring import ActiveModel, Scored, ScoredBatch, ScoringPlan
from driftloop_serving._service import FraudService
from driftloop_serving._slot import ModelRefused, ModelSlot

__all__ = [
    "API_KEY_ENV",
    "BATCH_FULL",
    "ActiveModel",
    "ApiKeyMissing",
    "FraudService",
    "ModelConfig",
    "ModelRefused",
    "ModelSlot",
    "PredictionLog",
    "Scored",
    "ScoredBatch",
    "ScoringPlan",
    "ServeArgs",
    "build_app",
    "customer_bucket",
    "in_canary",
    "locate",
]
