"""Checks for what the local stack needs from the machine, with messages saying what to do."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path


class MissingPrerequisite(RuntimeError):
    """A program the local stack needs is not installed."""


_ESCAPE = "or point DRIFTLOOP_KAFKA_BOOTSTRAP_SERVERS at an existing Kafka"


def find_java(path: str | None = None, minimum: int = 17) -> Path:
    """The ``java`` on PATH, checked to be at least ``minimum``."""
    java = shutil.which("java", path=path)
    if java is None:
        raise MissingPrerequisite(
            f"Java {minimum}+ is needed to run the local Kafka broker and `java` is not on PATH: "
            f"install OpenJDK {minimum} (Debian/Ubuntu: apt-get install "
            f"openjdk-{minimum}-jdk-headless; macOS: brew install openjdk@{minimum}), {_ESCAPE}"
        )
    major = java_major_version(Path(java))
    if major < minimum:
        raise MissingPrerequisite(
            f"{java} is Java {major}; Kafka needs Java {minimum}+: install OpenJDK {minimum}, "
            f"put it first on PATH, {_ESCAPE}"
        )
    return Path(java)


def java_major_version(java: Path) -> int:
    out = subprocess.run(
        [str(java), "-version"], capture_output=True, text=True, timeout=30, check=False
    )
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not match:
        raise MissingPrerequisite(f"could not read the version of {java}: {out.stderr.strip()}")
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def find_maven(path: str | None = None) -> Path:
    mvn = shutil.which("mvn", path=path)
    if mvn is None:
        raise MissingPrerequisite(
            "Maven is needed once to fetch the Kafka jars from Maven Central and `mvn` is not on "
            "PATH: install Maven 3.8+ (Debian/Ubuntu: apt-get install maven; macOS: brew install "
            f"maven), {_ESCAPE}"
        )
    return Path(mvn)
