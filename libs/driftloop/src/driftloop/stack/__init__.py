"""The local stack: Kafka and a Ray head run by supervisord, or existing ones when configured.

``up`` is idempotent and starts only what the settings say driftloop manages; ``down``
stops only what runs under this state directory's supervisord.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from driftloop.apikey import AUTH_ENV, KEY_ENV, describe, ensure_key
from driftloop.kafka import KafkaUnavailable, connect_admin, describe_topics, ensure_topics
from driftloop.ports import require_free
from driftloop.raycluster import dashboard_version
from driftloop.settings import Settings
from driftloop.stack._kafka import LocalKafka
from driftloop.stack._preflight import MissingPrerequisite, find_java, find_maven
from driftloop.stack._prometheus import (
    health,
    prometheus_url,
    register_targets,
    unregister_targets,
    wait_ready,
    write_config,
)
from driftloop.stack._ray import (
    end_orphaned_haproxy,
    ensure_token,
    haproxy_binary,
    serve_running,
    start_serve,
    wait_dashboard,
)
from driftloop.stack._supervisor import Supervisor
from driftloop.stack._tools import venv_tool

__all__ = [
    "ComponentStatus",
    "LocalStack",
    "MissingPrerequisite",
    "find_java",
    "find_maven",
    "prometheus_url",
    "register_targets",
    "unregister_targets",
]

Echo = Callable[[str], None]


@dataclass
class ComponentStatus:
    name: str
    up: bool
    address: str
    managed: bool
    detail: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


SERVICES = ("stream", "monitor", "trigger", "sync")
"""The loop's long-running services, in start order (supervisord programs)."""

METRICS_PORTS = {"stream": 9101, "monitor": 9102, "trigger": 9103, "sync": 9104}
"""Each service's default metrics port (its settings' ``<name>_metrics_port``)."""

SUPERVISED = "supervisord"
"""The launcher name of the services that ``start_services`` runs, for Prometheus."""


class LocalStack:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        config = settings.deploy_dir / "local" / "supervisord.conf"
        if not config.is_file():
            raise FileNotFoundError(
                f"{config} not found: run driftloop from the repository root "
                "or set DRIFTLOOP_DEPLOY_DIR"
            )
        self.supervisor = Supervisor(config, settings.state_dir)
        self.kafka = LocalKafka(settings)

    def _supervisor_env(self, java: str) -> dict[str, str]:
        s = self.settings
        return {
            "DRIFTLOOP_STATE_DIR": str(s.state_dir),
            "DRIFTLOOP_JAVA": java,
            "DRIFTLOOP_RAY": venv_tool("ray"),
            "DRIFTLOOP_BIN": str(Path(venv_tool("ray")).parent),
            "DRIFTLOOP_BIND_HOST": s.bind_host,
            "DRIFTLOOP_RAY_PORT": str(s.ray_port),
            "DRIFTLOOP_RAY_DASHBOARD_PORT": str(s.ray_dashboard_port),
            "DRIFTLOOP_RAY_CLIENT_PORT": str(s.ray_client_port),
            "DRIFTLOOP_RAY_NUM_CPUS": str(s.ray_num_cpus),
            # Serve's ingress (supervisord.conf): the binary haproxy-loopback becomes, and the
            # ports of its exporter and stats page
            "DRIFTLOOP_HAPROXY_BINARY": haproxy_binary(),
            "DRIFTLOOP_SERVE_INGRESS_METRICS_PORT": str(s.serve_ingress_metrics_port),
            "DRIFTLOOP_SERVE_INGRESS_STATS_PORT": str(s.serve_ingress_stats_port),
            # Ray workers (Serve replicas, Ray Jobs) inherit these from the head, so their
            # Settings() finds the same repository, features and models as the CLI's.
            "DRIFTLOOP_FEATURE_REPO": str(s.feature_repo),
            "DRIFTLOOP_FEATURE_ENV": s.feature_env,
            "DRIFTLOOP_FEATURE_DATA_URI": s.feature_data,
            "DRIFTLOOP_MODEL_STORE_URI": s.model_store,
            "DRIFTLOOP_DEPLOY_DIR": str(s.deploy_dir),
            "DRIFTLOOP_GIT_REPO": str(Path(s.git_repo).expanduser().absolute()),
            # The Serve endpoint's key by its file's path, never its content (a Serve
            # config, where the key could otherwise travel, is readable in the dashboard).
            "DRIFTLOOP_SERVE_AUTH": s.serve_auth,
            "DRIFTLOOP_SERVE_API_KEY_PATH": str(s.serve_api_key_path),
            # supervisord expands every %(ENV_…)s when it reads the file, so this is set
            # even when no Prometheus is installed (the program is then never started)
            "DRIFTLOOP_PROMETHEUS": self._prometheus() or "prometheus",
            "DRIFTLOOP_PROMETHEUS_PORT": str(s.prometheus_port),
        }

    def _prometheus(self) -> str | None:
        """A Prometheus server binary: in the state directory's tools, else on PATH."""
        import shutil

        local = self.settings.state_dir / "tools" / "bin" / "prometheus"
        return str(local) if local.is_file() else shutil.which("prometheus")

    # -- up ------------------------------------------------------------------------------
    def up(self, echo: Echo) -> None:
        s = self.settings
        java = "java"
        if s.kafka_managed:
            java_path = find_java()
            java = str(java_path)
            if not self._kafka_running():
                self._require_kafka_ports()  # fail before touching any file
            for line in self.kafka.prepare(java_path):
                echo(f"kafka: {line}")
        needs_supervisor = s.kafka_managed or s.ray_managed
        if needs_supervisor and self.supervisor.start(self._supervisor_env(java)):
            echo(f"supervisord: started (socket {self.supervisor.socket})")
        self._up_kafka(echo)
        created = ensure_topics(s)
        echo(
            f"topics: created {', '.join(created)}"
            if created
            else f"topics: all {s.topic_prefix}* topics present"
        )
        self._up_ray(echo)
        self._up_prometheus(echo)

    def _up_prometheus(self, echo: Echo) -> None:
        """Prometheus (`make prometheus` builds it): it scrapes the services and Ray and
        evaluates the alert rules (deploy/local/prometheus/)."""
        s = self.settings
        if self._prometheus() is None:
            echo("prometheus: not installed (`make prometheus` builds it; see README)")
            return
        if not self.supervisor.running():
            return
        state = self.supervisor.program("prometheus")
        if state is None:
            echo("prometheus: installed, but this supervisord predates it: `make down && make up`")
            return
        if state.running:
            echo(f"prometheus: already running on {prometheus_url(s)}")
            return
        require_free(s.bind_host, s.prometheus_port, "Prometheus")
        config = write_config(s)
        self.supervisor.start_program("prometheus")
        rules = wait_ready(s)
        echo(
            f"prometheus: {prometheus_url(s)}, {rules} alert rules, config {config}, "
            f"data {config.parent / 'data'}"
        )

    def _up_kafka(self, echo: Echo) -> None:
        s = self.settings
        address = ",".join(s.kafka_bootstrap)
        if not s.kafka_managed:
            connect_admin(s).close()  # raises KafkaUnavailable with a clear message
            echo(f"kafka: using the existing cluster at {address}")
            return
        state = self.supervisor.program("kafka")
        if state and state.running:
            echo(f"kafka: already running at {address} (pid {state.pid})")
            return
        self._require_kafka_ports()
        self.supervisor.start_program("kafka")
        self.kafka.wait_ready()
        pid = self.supervisor.program("kafka")
        echo(
            f"kafka: started at {address} (KRaft, pid {pid.pid if pid else '?'}, "
            f"data {self.kafka.data}, log {self.kafka.log})"
        )

    def _kafka_running(self) -> bool:
        state = self.supervisor.program("kafka")
        return bool(state and state.running)

    def _require_kafka_ports(self) -> None:
        s = self.settings
        require_free(s.bind_host, s.kafka_port, "the Kafka broker")
        require_free(s.bind_host, s.kafka_controller_port, "the Kafka controller")

    def _up_ray(self, echo: Echo) -> None:
        s = self.settings
        if not s.ray_managed:
            if dashboard_version(s) is None:
                raise RuntimeError(
                    f"the configured Ray dashboard {s.dashboard_url} does not answer (or refuses "
                    "our token): check DRIFTLOOP_RAY_DASHBOARD_URL and RAY_AUTH_TOKEN"
                )
            echo(f"ray: using the existing cluster at {s.ray_gcs_address} ({s.dashboard_url})")
            return
        self._up_key(echo)
        state = self.supervisor.program("ray")
        if state and state.running:
            echo(f"ray: already running at {s.ray_gcs_address} (pid {state.pid})")
        else:
            if ended := end_orphaned_haproxy():
                echo(f"serve: ended {ended} HAProxy process(es) a stopped Ray left running")
            for port, purpose in (
                (s.ray_port, "Ray's GCS"),
                (s.ray_dashboard_port, "the Ray dashboard"),
                (s.ray_client_port, "the Ray client server"),
                (s.serve_port, "Ray Serve's HTTP ingress (HAProxy)"),
                (s.serve_ingress_metrics_port, "the Serve ingress's metrics exporter"),
                (s.serve_ingress_stats_port, "the Serve ingress's stats page"),
            ):
                require_free(s.bind_host, port, purpose)
            if ensure_token(s):
                echo(f"ray: generated the cluster token in {s.ray_auth_token_path}")
            self.supervisor.start_program("ray")
            wait_dashboard(s)
            echo(
                f"ray: started the head at {s.ray_gcs_address}, token auth on, "
                f"{s.ray_num_cpus} CPUs, dashboard {s.dashboard_url}"
            )
        if serve_running(s):
            echo(f"serve: already listening on {s.serve_url}")
        else:
            start_serve(s)
            echo(f"serve: HTTP proxy on {s.serve_url}")

    def _up_key(self, echo: Echo) -> None:
        """The Serve endpoint's API key, made once as Ray's token is (replicas refuse to
        start without one unless auth is off)."""
        s = self.settings
        if s.serve_auth == "off":
            echo(f"serve: auth off ({AUTH_ENV}=off): the scoring routes need no key")
        elif s.serve_api_key is not None:
            echo(f"serve: API key from {KEY_ENV}")
        elif ensure_key(s):
            echo(f"serve: generated the API key in {s.serve_api_key_path} (send it as X-API-Key)")

    # -- down ----------------------------------------------------------------------------
    def down(self, echo: Echo) -> None:
        if not self.supervisor.running():
            echo("nothing to stop: no local stack runs from this state directory")
            return
        for program in (*SERVICES, "prometheus", "ray", "kafka"):
            state = self.supervisor.program(program)
            if state and state.running:
                self.supervisor.stop_program(program)
                echo(f"{program}: stopped")
        unregister_targets(self.settings, SUPERVISED)
        self.supervisor.shutdown()
        echo("supervisord: stopped")
        if ended := end_orphaned_haproxy():
            echo(f"serve: ended {ended} HAProxy process(es) left by Ray's stop")

    # -- the loop's services -------------------------------------------------------------
    def start_services(self, echo: Echo) -> None:
        """Start stream, monitor, trigger and sync under supervisord (the stack must be up)."""
        if not self.supervisor.running():
            raise RuntimeError("the stack is not running: `driftloop up` first")
        for program in SERVICES:
            state = self.supervisor.program(program)
            if state and state.running:
                echo(f"{program}: already running (pid {state.pid})")
                continue
            self.supervisor.start_program(program)
            echo(f"{program}: started, log {self.settings.state_dir / 'logs' / program}.log")
        register_targets(self.settings, SUPERVISED, self._metrics_ports())

    @staticmethod
    def _metrics_ports() -> dict[str, int]:
        """The ports the supervised services listen on: their defaults, or the
        DRIFTLOOP_<NAME>_METRICS_PORT of the environment supervisord was started with (by
        `driftloop up`, from the same shell as this one)."""
        return {
            name: int(os.environ.get(f"DRIFTLOOP_{name.upper()}_METRICS_PORT", port))
            for name, port in METRICS_PORTS.items()
        }

    def stop_services(self, echo: Echo) -> None:
        if not self.supervisor.running():
            echo("nothing to stop: the stack is not running")
            return
        for program in SERVICES:
            state = self.supervisor.program(program)
            if state and state.running:
                self.supervisor.stop_program(program)
                echo(f"{program}: stopped")
        unregister_targets(self.settings, SUPERVISED)

    # -- status --------------------------------------------------------------------------
    def status(self) -> list[ComponentStatus]:
        found = [self._kafka_status(), self._ray_status(), self._serve_status()]
        if self._prometheus() is not None:  # optional where no binary was built
            found.append(self._prometheus_status())
        return [*found, self._sup_status()]

    def _prometheus_status(self) -> ComponentStatus:
        s = self.settings
        detail: dict[str, Any] = self._program("prometheus")
        found = health(s)
        if found is not None:
            detail.update(found)
        return ComponentStatus("prometheus", found is not None, prometheus_url(s), True, detail)

    def _program(self, name: str) -> dict[str, Any]:
        state = self.supervisor.program(name)
        return {"process": state.state, "pid": state.pid} if state else {}

    def _kafka_status(self) -> ComponentStatus:
        s = self.settings
        quick = s.model_copy(update={"kafka_timeout_s": min(3.0, s.kafka_timeout_s)})
        detail: dict[str, Any] = self._program("kafka") if s.kafka_managed else {}
        try:
            topics = describe_topics(quick)
        except KafkaUnavailable as exc:
            detail["error"] = str(exc)
            return ComponentStatus(
                "kafka", False, ",".join(s.kafka_bootstrap), s.kafka_managed, detail
            )
        detail["topics"] = {
            t.name: {
                "partitions": t.partitions,
                "end_offsets": t.end_offsets,
                "messages": t.messages,
            }
            for t in topics
        }
        return ComponentStatus("kafka", True, ",".join(s.kafka_bootstrap), s.kafka_managed, detail)

    def _ray_status(self) -> ComponentStatus:
        s = self.settings
        detail: dict[str, Any] = self._program("ray") if s.ray_managed else {}
        version = dashboard_version(s)
        detail["dashboard"] = s.dashboard_url
        if version:
            detail["ray_version"] = version.get("ray_version")
            detail["session"] = version.get("session_name")
        return ComponentStatus("ray", version is not None, s.ray_gcs_address, s.ray_managed, detail)

    def _serve_status(self) -> ComponentStatus:
        s = self.settings
        return ComponentStatus("serve", serve_running(s), s.serve_url, s.ray_managed, describe(s))

    def _sup_status(self) -> ComponentStatus:
        programs = {p.name: p.state for p in self.supervisor.programs()}
        return ComponentStatus(
            "supervisord",
            self.supervisor.running(),
            str(self.supervisor.socket),
            True,
            {"programs": programs},
        )
