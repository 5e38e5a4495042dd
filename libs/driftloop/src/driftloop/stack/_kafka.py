"""The local Kafka broker: jars from Maven Central, KRaft storage, config in the state dir."""

from __future__ import annotations

import base64
import hashlib
import subprocess
import time
import uuid
from pathlib import Path
from string import Template

from driftloop.kafka import KafkaUnavailable, connect_admin
from driftloop.settings import Settings
from driftloop.stack._preflight import find_maven


def new_cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes, URL-safe base64. Like Kafka's own
    ``Uuid.randomUuid`` it never starts with '-', which the storage tool would read as an
    option (1 id in 64 otherwise)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


class LocalKafka:
    """Files of the local broker: ``<state>/kafka/{data,server.properties,jvm.args}``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.source = settings.deploy_dir / "local" / "kafka"
        self.home = settings.state_dir / "kafka"
        self.data = self.home / "data"
        self.config = self.home / "server.properties"
        self.jvm_args = self.home / "jvm.args"
        self.classpath_file = self.home / "classpath.txt"
        self.log = settings.state_dir / "logs" / "kafka.log"

    def prepare(self, java: Path) -> list[str]:
        """Resolve jars, render config, format storage once. Returns what it did."""
        done = []
        self.home.mkdir(parents=True, exist_ok=True)
        if self._resolve_classpath():
            done.append(f"resolved Kafka {self.settings.kafka_version} jars from Maven Central")
        self._render()
        if not (self.data / "meta.properties").exists():
            self._format(java)
            done.append(f"formatted KRaft storage in {self.data}")
        return done

    def _pom_fingerprint(self) -> str:
        pom = (self.source / "pom.xml").read_bytes()
        return hashlib.sha256(pom + self.settings.kafka_version.encode()).hexdigest()

    def _resolve_classpath(self) -> bool:
        stamp = self.home / "classpath.sha256"
        if (
            self.classpath_file.exists()
            and stamp.exists()
            and stamp.read_text() == self._pom_fingerprint()
            and all(Path(j).exists() for j in self.classpath_file.read_text().split(":"))
        ):
            return False
        mvn = find_maven()
        result = subprocess.run(
            [
                str(mvn), "-q", "-B", "-f", str(self.source / "pom.xml"),
                f"-Dkafka.version={self.settings.kafka_version}",
                "dependency:build-classpath", f"-Dmdep.outputFile={self.classpath_file}",
            ],
            capture_output=True, text=True, timeout=900, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(
                "Maven could not resolve the Kafka jars from Maven Central:\n"
                + (result.stdout + result.stderr)[-3000:]
            )
        stamp.write_text(self._pom_fingerprint())
        return True

    def _render(self) -> None:
        s = self.settings
        template = Template((self.source / "server.properties").read_text())
        self.config.write_text(
            template.substitute(
                host=s.bind_host,
                port=s.kafka_port,
                controller_port=s.kafka_controller_port,
                data_dir=self.data,
            )
        )
        self.jvm_args.write_text(
            "\n".join(
                [
                    f"-Xms{s.kafka_heap}",
                    f"-Xmx{s.kafka_heap}",
                    "-XX:+UseG1GC",
                    "-Djava.awt.headless=true",
                    f"-Dlog4j2.configurationFile={self.source / 'log4j2.yaml'}",
                    "-cp",
                    self.classpath_file.read_text().strip(),
                ]
            )
            + "\n"
        )

    def _format(self, java: Path) -> None:
        cluster_id = new_cluster_id()
        result = subprocess.run(
            [
                str(java), f"@{self.jvm_args}", "kafka.tools.StorageTool", "format",
                "--cluster-id", cluster_id, "--config", str(self.config), "--standalone",
            ],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            output = (result.stdout + result.stderr)[-3000:]
            raise RuntimeError(f"formatting Kafka storage failed:\n{output}")

    def wait_ready(self, timeout_s: float = 90) -> None:
        """Block until the broker answers metadata requests."""
        deadline = time.monotonic() + timeout_s
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                admin = connect_admin(self.settings)
            except KafkaUnavailable as exc:
                last = exc
                time.sleep(0.5)
                continue
            try:
                admin.list_topics()
                return
            except Exception as exc:
                last = exc
                time.sleep(0.5)
            finally:
                admin.close()
        raise RuntimeError(
            f"Kafka did not become ready within {timeout_s:g} s ({last}); see {self.log}"
        )
