"""What a trained model records about where it came from: code, features, packages."""

from __future__ import annotations

import hashlib
import platform
import subprocess
from importlib import metadata
from pathlib import Path

from driftloop.settings import Settings


def _git(repo: Path, *args: str) -> str:
    # --no-optional-locks: a status read must never take the index lock from a writer.
    result = subprocess.run(
        ["git", "--no-optional-locks", "-C", str(repo), *args],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} in {repo} failed: {result.stderr.strip()}")
    return result.stdout


def git_state(settings: Settings) -> tuple[str, bool]:
    """The commit the code is at, and whether the working tree differs from it: the
    repository holding the Feast definitions and the model specs, which is not
    necessarily the deploy repository promotions go to (``git_repo``)."""
    repo = settings.feature_repo.parent
    sha = _git(repo, "rev-parse", "HEAD").strip()
    dirty = bool(_git(repo, "status", "--porcelain").strip())
    return sha, dirty


def feature_views_hash(settings: Settings) -> str:
    """sha256 of the Feast definitions the features were computed by."""
    path = settings.feature_repo / "repo" / "definitions.py"
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def _version(*distributions: str) -> str:
    for name in distributions:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return "absent"


def package_versions() -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "ray": _version("ray"),
        "xgboost": _version("xgboost", "xgboost-cpu"),
        "feast": _version("feast"),
        "scikit-learn": _version("scikit-learn"),
        "pandas": _version("pandas"),
        "driftloop": _version("driftloop"),
    }
