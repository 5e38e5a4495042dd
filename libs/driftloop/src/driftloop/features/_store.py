"""Opening the Feast repository of an environment, and running Feast's CLI on it."""

from __future__ import annotations

import os
import re
import subprocess
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from feast import FeatureStore
from feast.repo_config import RepoConfig

from driftloop.features._asof_ray import RAY_TYPE
from driftloop.raycluster import client_environment, enable_token_auth
from driftloop.settings import Settings
from driftloop.stack._tools import venv_tool

if TYPE_CHECKING:
    import pandas as pd

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def feast_environment(settings: Settings) -> dict[str, str]:
    """The variables ``feature_store.yaml`` and ``definitions.py`` are written against."""
    return {
        "DRIFTLOOP_STATE_DIR": str(settings.state_dir),
        "DRIFTLOOP_FEATURE_DATA": settings.feature_data,
        "DRIFTLOOP_RAY_GCS_ADDRESS": settings.ray_gcs_address,
    }


def store_yaml(settings: Settings) -> Path:
    return settings.feature_repo / "envs" / settings.feature_env / "feature_store.yaml"


def repo_dir(settings: Settings) -> Path:
    return settings.feature_repo / "repo"


def load_repo_config(settings: Settings) -> RepoConfig:
    variables = {**os.environ, **feast_environment(settings)}
    text = store_yaml(settings).read_text()
    missing = sorted({m for m in _VAR.findall(text) if m not in variables})
    if missing:
        raise ValueError(f"{store_yaml(settings)} needs {', '.join(missing)} in the environment")
    raw: dict[str, Any] = yaml.safe_load(_VAR.sub(lambda m: variables[m.group(1)], text))
    return RepoConfig(**raw, repo_path=repo_dir(settings))


def open_store(settings: Settings) -> FeatureStore:
    """The Feast store of ``settings.feature_env``; local state directories are created."""
    if settings.feature_env.startswith("local"):
        (settings.state_dir / "feast").mkdir(parents=True, exist_ok=True)
    config = load_repo_config(settings)
    if getattr(config.offline_store, "type", "") in ("ray", RAY_TYPE):  # clients of the cluster
        enable_token_auth(settings)
    return FeatureStore(repo_path=str(repo_dir(settings)), config=config)


def feast_cli(settings: Settings, *args: str, timeout_s: float = 600) -> str:
    """Run ``feast <args>`` on the repository; return its output, raise with it on failure."""
    if settings.feature_env.startswith("local"):
        (settings.state_dir / "feast").mkdir(parents=True, exist_ok=True)
    command = [
        venv_tool("feast"),
        "-c",
        str(repo_dir(settings)),
        "-f",
        str(store_yaml(settings)),
        *args,
    ]
    result = subprocess.run(
        command,
        env={**os.environ, **feast_environment(settings), **client_environment(settings)},
        capture_output=True,
        text=True, timeout=timeout_s, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(
            f"feast {' '.join(args)} failed:\n{(result.stdout + result.stderr)[-4000:]}"
        )
    return result.stdout


def apply_repo(settings: Settings) -> str:
    """Create any batch source that has no file yet (zero rows, right schema), then
    ``feast apply``. Returns Feast's output."""
    from driftloop.features._history import SCHEMAS, empty_sources
    from driftloop.features._offline import list_batches, write_batch

    for name, frame in empty_sources().items():
        directory = f"{settings.feature_data}/{name}"
        if not list_batches(directory):
            write_batch(frame, directory, "empty", SCHEMAS[name])
    return feast_cli(settings, "apply")


def backfill_sources(
    settings: Settings, history: pd.DataFrame, created: datetime
) -> dict[str, tuple[int, str, float]]:
    """Customer aggregates and merchant snapshots of a labelled history, appended to the
    batch sources as one batch each: per table, (rows, path, seconds)."""
    import time

    from driftloop.features._history import SCHEMAS, customer_aggregates, merchant_stats
    from driftloop.features._offline import write_batch

    out: dict[str, tuple[int, str, float]] = {}
    for name, build in (("customer_aggregates", customer_aggregates),
                        ("merchant_stats", merchant_stats)):  # fmt: skip
        started = time.perf_counter()
        frame = build(history, created)
        path = write_batch(frame, f"{settings.feature_data}/{name}", "backfill", SCHEMAS[name])
        out[name] = (len(frame), path, time.perf_counter() - started)
    return out


def materialize(settings: Settings, until: datetime) -> str:
    """Load the batch feature values newer than the last materialization into the online
    store (``feast materialize-incremental``)."""
    return feast_cli(settings, "materialize-incremental", until.strftime("%Y-%m-%dT%H:%M:%S"))
