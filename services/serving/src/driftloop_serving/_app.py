"""The application builder named by ``serve.yaml``: ``driftloop_serving:build_app``."""

# No `from __future__ import annotations`: Ray reads the builder's parameter annotation to
# validate serve.yaml's ``args`` into ServeArgs, and needs the class, not a string.

from ray.serve import Application

from driftloop_serving._config import ServeArgs
from driftloop_serving._service import FraudService


def build_app(args: ServeArgs) -> Application:
    """The fraud scoring application. Deployment options (replicas, autoscaling,
    ``max_ongoing_requests``, the model in ``user_config``) come from the serve config."""
    return FraudService.bind(args)
