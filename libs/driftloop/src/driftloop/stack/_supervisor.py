"""Talking to supervisord, which runs the local stack's long-running processes."""

from __future__ import annotations

import os
import subprocess
import time
import xmlrpc.client
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from supervisor.xmlrpc import SupervisorTransport

from driftloop.stack._tools import venv_tool


@dataclass(frozen=True)
class ProgramState:
    name: str
    state: str  # RUNNING, STARTING, STOPPED, FATAL, EXITED, BACKOFF, STOPPING, UNKNOWN
    pid: int
    description: str

    @property
    def running(self) -> bool:
        return self.state in {"RUNNING", "STARTING"}


class Supervisor:
    """A supervisord instance whose socket and logs live in the state directory."""

    def __init__(self, config: Path, state_dir: Path) -> None:
        self.config = config
        self.state_dir = state_dir
        self.socket = state_dir / "supervisor.sock"

    def _proxy(self) -> Any:
        transport = SupervisorTransport(None, None, serverurl=f"unix://{self.socket}")
        # The host part is ignored: the transport speaks over the unix socket.
        return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)

    def running(self) -> bool:
        if not self.socket.exists():
            return False
        try:
            return cast(str, self._proxy().supervisor.getState()["statename"]) == "RUNNING"
        except (OSError, xmlrpc.client.Fault):
            return False

    def start(self, env: dict[str, str], timeout_s: float = 20) -> bool:
        """Start supervisord (daemonised) unless it runs; True if this call started it."""
        if self.running():
            return False
        (self.state_dir / "logs").mkdir(parents=True, exist_ok=True)
        self.socket.unlink(missing_ok=True)
        subprocess.run(
            [venv_tool("supervisord"), "-c", str(self.config)],
            env={**os.environ, **env},
            check=True,
            timeout=timeout_s,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.running():
                return True
            time.sleep(0.2)
        raise RuntimeError(f"supervisord did not come up; see {self.state_dir / 'logs'}")

    def program(self, name: str) -> ProgramState | None:
        if not self.running():
            return None
        try:
            info = self._proxy().supervisor.getProcessInfo(name)
        except xmlrpc.client.Fault as fault:
            if "BAD_NAME" in fault.faultString:
                return None  # a supervisord started from an older config lacks the program
            raise
        return ProgramState(name, info["statename"], info["pid"], info["description"])

    def programs(self) -> list[ProgramState]:
        if not self.running():
            return []
        return [
            ProgramState(i["name"], i["statename"], i["pid"], i["description"])
            for i in self._proxy().supervisor.getAllProcessInfo()
        ]

    def start_program(self, name: str) -> None:
        try:
            self._proxy().supervisor.startProcess(name, True)
        except xmlrpc.client.Fault as fault:
            if "ALREADY_STARTED" not in fault.faultString:
                raise RuntimeError(
                    f"{name} did not start ({fault.faultString}); "
                    f"see {self.state_dir / 'logs' / (name + '.log')}"
                ) from fault

    def stop_program(self, name: str) -> None:
        try:
            self._proxy().supervisor.stopProcess(name, True)
        except xmlrpc.client.Fault as fault:
            if "NOT_RUNNING" not in fault.faultString:
                raise

    def shutdown(self, timeout_s: float = 90) -> None:
        if not self.running():
            return
        try:
            self._proxy().supervisor.shutdown()
        except (OSError, xmlrpc.client.Fault):
            return
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self.socket.exists():
            time.sleep(0.2)
