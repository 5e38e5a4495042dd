"""The one settings object of a driftloop process, read from ``DRIFTLOOP_*`` variables.

Nothing here touches the disk or the network: paths are resolved, not created.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

TOPICS: tuple[str, ...] = (
    "transactions",
    "labels",
    "predictions",
    "drift-events",
    "workflow-events",
    "dlq",
)
"""Logical topic names; the broker sees them behind :attr:`Settings.topic_prefix`."""


class Settings(BaseSettings):
    """Where things are and how they are reached. Every field reads ``DRIFTLOOP_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="DRIFTLOOP_", extra="forbid", frozen=True)

    # Kafka. Unset means "the local broker that `driftloop up` runs"; set it to use an
    # existing cluster, which is then never started or stopped by driftloop.
    kafka_bootstrap_servers: str | None = None
    kafka_port: int = Field(9092, ge=1, le=65535)
    kafka_controller_port: int = Field(9093, ge=1, le=65535)
    kafka_timeout_s: float = Field(
        10.0, gt=0, description="bound on connecting and on blocking sends"
    )
    kafka_version: str = "4.1.1"
    kafka_heap: str = "512m"
    topic_prefix: str = "driftloop."
    topic_partitions: int = Field(3, ge=1)
    topic_replication_factor: int = Field(1, ge=1)
    topic_retention_ms: int = Field(7 * 24 * 3600 * 1000, ge=-1)

    # Ray. Unset means "the local head that `driftloop up` runs".
    ray_address: str | None = None
    ray_dashboard_url: str | None = None
    ray_port: int = Field(6379, ge=1, le=65535)
    ray_dashboard_port: int = Field(8265, ge=1, le=65535)
    ray_client_port: int = Field(10001, ge=1, le=65535)
    ray_num_cpus: int = Field(2, ge=1)
    ray_auth_token_path: Path = Path("~/.ray/auth_token")
    serve_port: int = Field(8000, ge=1, le=65535)
    # Serve's HAProxy ingress: its Prometheus exporter and its stats page (bind host only)
    serve_ingress_metrics_port: int = Field(9105, ge=1, le=65535)
    serve_ingress_stats_port: int = Field(8404, ge=1, le=65535)
    prometheus_port: int = Field(9090, ge=1, le=65535)  # when a prometheus binary is found

    feature_repo: Path = Path("features")
    feature_env: Literal["local", "local-file", "local-ray", "k8s"] = "local"
    feature_data_uri: str | None = None  # default: <state_dir>/features

    model_store_uri: str | None = None  # default: <state_dir>/models
    runs_uri: str | None = None  # workflow runs' state and artifacts; default <state_dir>/runs
    # Argo Workflows: unset means the local executor on Ray runs the workflows.
    argo_server: str | None = None  # e.g. https://argo-server.argo:2746
    argo_namespace: str = "driftloop"
    argo_token: SecretStr | None = None
    git_repo: str = "."
    git_branch: str = "main"
    git_remote: str = "origin"
    promotion_policy: Literal["merge", "pr"] = "merge"
    github_api: str = "https://api.github.com"
    github_token: SecretStr | None = None
    github_repository: str | None = None  # owner/name; default: from the remote's URL
    state_dir: Path = Path(".driftloop")
    deploy_dir: Path = Path("deploy")
    bind_host: str = "127.0.0.1"

    # The Serve endpoint's API key (X-API-Key on the scoring routes). "key", the default,
    # means a replica refuses to start without one; "off" serves anyone. The key itself is
    # DRIFTLOOP_SERVE_API_KEY (Kubernetes: from a Secret) or else the file below, which
    # `driftloop up` generates as Ray's token is; resolved when the settings are made, so a
    # copy with another state_dir (the demo's, a test's) still names the stack's key.
    serve_auth: Literal["key", "off"] = "key"
    serve_api_key: SecretStr | None = None
    serve_api_key_path: Path = Field(default_factory=lambda data: _in_state(data, "serve-api-key"))

    @field_validator(
        "state_dir", "deploy_dir", "feature_repo", "ray_auth_token_path", "serve_api_key_path"
    )
    @classmethod
    def _absolute(cls, path: Path) -> Path:
        return path.expanduser().absolute()

    @field_validator("topic_prefix")
    @classmethod
    def _legal_prefix(cls, prefix: str) -> str:
        legal = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
        if not set(prefix) <= legal:
            raise ValueError("may hold only ASCII letters, digits, '.', '_' and '-'")
        return prefix

    @property
    def kafka_managed(self) -> bool:
        """True when driftloop runs the broker itself."""
        return self.kafka_bootstrap_servers is None

    @property
    def kafka_bootstrap(self) -> list[str]:
        if self.kafka_bootstrap_servers is None:
            return [f"{self.bind_host}:{self.kafka_port}"]
        return [s.strip() for s in self.kafka_bootstrap_servers.split(",") if s.strip()]

    @property
    def ray_managed(self) -> bool:
        """True when driftloop runs the Ray head itself."""
        return self.ray_address is None

    @property
    def ray_gcs_address(self) -> str:
        return self.ray_address or f"{self.bind_host}:{self.ray_port}"

    @property
    def dashboard_url(self) -> str:
        if self.ray_dashboard_url:
            return self.ray_dashboard_url.rstrip("/")
        return f"http://{self.bind_host}:{self.ray_dashboard_port}"

    @property
    def serve_url(self) -> str:
        return f"http://{self.bind_host}:{self.serve_port}"

    @property
    def feature_data(self) -> str:
        """Where feature parquet lives: a local absolute path or a filesystem URI."""
        return self.feature_data_uri or str(self.state_dir / "features")

    @property
    def model_store(self) -> str:
        """The model store's root: a local absolute path or a filesystem URI."""
        if self.model_store_uri is None:
            return str(self.state_dir / "models")
        if "://" in self.model_store_uri:
            return self.model_store_uri
        return str(Path(self.model_store_uri).expanduser().absolute())

    @property
    def runs(self) -> str:
        """Where workflow runs keep their state and hand artifacts between steps."""
        if self.runs_uri is None:
            return str(self.state_dir / "runs")
        if "://" in self.runs_uri:
            return self.runs_uri
        return str(Path(self.runs_uri).expanduser().absolute())

    def topic(self, name: str) -> str:
        """The broker-side name of a logical topic such as ``"dlq"``."""
        if name not in TOPICS:
            raise ValueError(f"unknown topic {name!r}; known: {', '.join(TOPICS)}")
        return f"{self.topic_prefix}{name}"


def _in_state(data: dict[str, Any], name: str) -> Path:
    """``<state_dir>/<name>``, for a field declared after ``state_dir`` (already absolute)."""
    state_dir: Path = data["state_dir"]
    return state_dir / name


@cache
def get_settings() -> Settings:
    """The process-wide settings, read from the environment on first use."""
    return Settings()
