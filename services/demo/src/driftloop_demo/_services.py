"""The loop's services as child processes with the demo's settings in their environment:
stream, monitor, trigger and sync, each logging to a file of its own, each named with its
metrics port to the stack's Prometheus."""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from driftloop.runs._jobs import settings_environment
from driftloop.settings import Settings
from driftloop.stack import register_targets, unregister_targets

SERVICES = ("sync", "stream", "monitor", "trigger")
DEFAULT_PORTS = {"stream": 9101, "monitor": 9102, "trigger": 9103, "sync": 9104}


def free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Services:
    """Starts the services once and stops them on ``close``; the logs stay. With ``stack``
    (the stack's settings) their ports go to its Prometheus' targets while they run."""

    settings: Settings
    log_dir: Path
    default_ports: bool = True
    stack: Settings | None = None
    environment: dict[str, dict[str, str]] = field(default_factory=dict)
    """Variables of one service's own settings (``DRIFTLOOP_<SERVICE>_*``), by service."""
    ports: dict[str, int] = field(default_factory=dict)
    _procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _logs: list[IO[bytes]] = field(default_factory=list)

    def start(self, name: str) -> None:
        port = DEFAULT_PORTS[name] if self.default_ports else free_port(self.settings.bind_host)
        self.ports[name] = port
        env = {
            **os.environ,
            **settings_environment(self.settings),
            f"DRIFTLOOP_{name.upper()}_METRICS_PORT": str(port),
        }
        if name == "sync":
            env["DRIFTLOOP_SYNC_INTERVAL_S"] = "2"
        env.update(self.environment.get(name, {}))
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = (self.log_dir / f"{name}.log").open("ab")
        self._logs.append(log)
        command = str(Path(sys.executable).parent / f"driftloop-{name}")
        self._procs[name] = subprocess.Popen(
            [command, "run"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
        if self.stack is not None:
            register_targets(
                self.stack, self.launcher, self.ports, {"run": self.log_dir.parent.name}
            )

    @property
    def launcher(self) -> str:
        """The name of this run's targets file: one per demo directory."""
        digest = hashlib.sha256(str(self.log_dir.absolute()).encode()).hexdigest()
        return f"demo-{digest[:10]}"

    def wait_ready(self, names: tuple[str, ...], timeout_s: float = 180) -> None:
        """Until each service answers on its metrics port: a service serves metrics once
        it has restored its state (the stream: its windows seeded from the history), so
        traffic sent before that would be scored on stale online features."""
        import time
        import urllib.request

        deadline = time.monotonic() + timeout_s
        for name in names:
            url = f"http://{self.settings.bind_host}:{self.ports[name]}/metrics"
            while True:
                try:
                    with urllib.request.urlopen(url, timeout=2) as answer:
                        if answer.status == 200:
                            break
                except OSError:
                    pass
                if self._procs[name].poll() is not None:
                    raise RuntimeError(f"the {name} service exited before it was ready")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the {name} service was not ready in {timeout_s:g} s")
                time.sleep(0.5)

    def kill(self, name: str) -> int:
        """SIGKILL the service (no chance to flush or commit anything); return its pid."""
        proc = self._procs[name]
        proc.kill()
        proc.wait()
        return proc.pid

    def alive(self) -> dict[str, bool]:
        return {name: proc.poll() is None for name, proc in self._procs.items()}

    def close(self, timeout_s: float = 30) -> None:
        for proc in self._procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self._procs.values():
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for log in self._logs:
            log.close()
        if self.stack is not None:
            unregister_targets(self.stack, self.launcher)
