"""Processes of the control plane: started in a network namespace of their own, recorded by
pid in the state directory, probed until ready, stopped by pid.

The namespace has only a loopback device, so what a controller binds there (the Argo
Workflows controller's fixed ``:6060``, metrics and probe ports, redis) is reachable from
no other namespace; the API server's port, and the Argo server's, reach the host's
127.0.0.1 through two socat relays each, joined by a unix socket in the state directory.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

PIDS = "pids.json"


@dataclass(frozen=True)
class Started:
    name: str
    pid: int
    log: Path


class NotReady(RuntimeError):
    """A process that exited or did not answer in time; the message says which and why."""


def log_tail(log: Path, lines: int = 25) -> str:
    if not log.exists():
        return "(no log)"
    text = log.read_text(errors="replace").splitlines()
    return "\n".join(text[-lines:])


class Processes:
    """The control plane's processes, by name, with their pids in ``state/pids.json``."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self.logs = state / "logs"
        self.netns_pid: int | None = None

    # -- records --------------------------------------------------------------------------
    def recorded(self) -> dict[str, int]:
        return {name: pid for name, (pid, _) in self._records().items()}

    def _records(self) -> dict[str, tuple[int, int]]:
        """Name → (pid, the kernel's start time of that pid when it was started here)."""
        path = self.state / PIDS
        return (
            {n: (p, t) for n, (p, t) in json.loads(path.read_text()).items()}
            if path.exists()
            else {}
        )

    def _record(self, name: str, pid: int) -> None:
        records = self._records()
        records[name] = (pid, _start_time(pid))
        (self.state / PIDS).write_text(json.dumps(records, indent=1))

    # -- starting -------------------------------------------------------------------------
    def start_namespace(self, relay_socket: Path, port: int) -> Started:
        """The namespace, held by its first process: the relay from ``relay_socket`` to
        ``127.0.0.1:port`` inside it."""
        script = (
            "ip link set lo up && exec socat "
            f"UNIX-LISTEN:{relay_socket},fork,unlink-early,mode=600 TCP:127.0.0.1:{port}"
        )
        argv = ["unshare", "--net", "--", "sh", "-c", script]
        started = self._spawn("netns-relay", argv, dict(os.environ))
        self.netns_pid = started.pid
        return started

    def relay_to_host(self, name: str, port: int, host_port: int) -> float:
        """``127.0.0.1:port`` inside the namespace on the host's ``127.0.0.1:host_port``, as
        the API server's: socat in the namespace behind a unix socket of the state
        directory, socat on the host. Seconds until a connection through both is taken."""
        sock = self.state / f"{name}.sock"
        inner = ["socat", f"UNIX-LISTEN:{sock},fork,unlink-early,mode=600", f"TCP:127.0.0.1:{port}"]
        self.start(f"{name}-netns-relay", inner, dict(os.environ))
        listen = f"TCP-LISTEN:{host_port},bind=127.0.0.1,reuseaddr,fork"
        host = self.start_on_host(f"{name}-host-relay", ["socat", listen, f"UNIX-CONNECT:{sock}"])

        def through() -> bool:
            if not sock.exists():
                return False
            with socket.create_connection(("127.0.0.1", host_port), timeout=2):
                return True

        return self.wait(host, through, 30)

    def in_namespace(self, argv: Sequence[str]) -> list[str]:
        if self.netns_pid is None:
            raise RuntimeError("the network namespace is not started")
        return ["nsenter", f"--net=/proc/{self.netns_pid}/ns/net", "--", *argv]

    def start(self, name: str, argv: Sequence[str], env: Mapping[str, str]) -> Started:
        return self._spawn(name, self.in_namespace(argv), env)

    def start_on_host(self, name: str, argv: Sequence[str]) -> Started:
        return self._spawn(name, argv, dict(os.environ))

    def _spawn(self, name: str, argv: Sequence[str], env: Mapping[str, str]) -> Started:
        self.logs.mkdir(parents=True, exist_ok=True)
        log = self.logs / f"{name}.log"
        with log.open("ab") as out:
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=dict(env),
                cwd=self.state,
                start_new_session=True,
            )
        self._record(name, proc.pid)
        return Started(name, proc.pid, log)

    # -- readiness ------------------------------------------------------------------------
    def wait(self, started: Started, ready: Callable[[], bool], timeout: float) -> float:
        """Seconds until ``ready()``; NotReady with the log's tail when the process exits
        or ``timeout`` passes."""
        t0 = time.monotonic()
        while True:
            if not alive(started.pid):
                raise NotReady(
                    f"{started.name} exited before it was ready; {started.log}:\n"
                    f"{log_tail(started.log)}"
                )
            try:
                if ready():
                    return time.monotonic() - t0
            except (OSError, subprocess.SubprocessError):
                pass
            if time.monotonic() - t0 > timeout:
                raise NotReady(
                    f"{started.name} not ready after {timeout:.0f} s; {started.log}:\n"
                    f"{log_tail(started.log)}"
                )
            time.sleep(0.5)

    def http_ok(self, url: str) -> Callable[[], bool]:
        """A probe of ``url`` from inside the namespace (curl; any 2xx is ready)."""
        argv = self.in_namespace(["curl", "-sf", "-o", "/dev/null", "--max-time", "2", url])
        return lambda: subprocess.run(argv, capture_output=True).returncode == 0

    def command_ok(self, argv: Sequence[str]) -> Callable[[], bool]:
        full = self.in_namespace(argv)
        return lambda: subprocess.run(full, capture_output=True).returncode == 0

    # -- stopping -------------------------------------------------------------------------
    def stop_all(self, grace: float = 10.0) -> list[str]:
        """SIGTERM every recorded process group (the last started first), SIGKILL what is
        left after ``grace`` seconds; the names stopped."""
        records = self._records()
        stopped = []
        for name, (pid, started) in reversed(list(records.items())):
            if alive(pid) and _start_time(pid) == started:
                _signal_group(pid, signal.SIGTERM)
                stopped.append(name)
        deadline = time.monotonic() + grace
        for pid, started in records.values():
            while alive(pid) and time.monotonic() < deadline:
                time.sleep(0.2)
            if alive(pid) and _start_time(pid) == started:
                _signal_group(pid, signal.SIGKILL)
        (self.state / PIDS).unlink(missing_ok=True)
        return stopped


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    try:  # a zombie (exited, not yet reaped by its parent) is not alive
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _start_time(pid: int) -> int:
    """When ``pid`` started, in clock ticks since boot (/proc/PID/stat field 22), or -1: a pid
    recorded with its start time is signalled only while it is still that process, never a
    stranger that reuses the number."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return -1
    return int(fields[19])


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)


def require(*programs: str) -> None:
    missing = [p for p in programs if shutil.which(p) is None]
    if missing:
        raise SystemExit(
            f"k8s-up needs {', '.join(missing)} on PATH "
            "(Debian: apt-get install socat redis-server util-linux iproute2 curl openssl)"
        )
