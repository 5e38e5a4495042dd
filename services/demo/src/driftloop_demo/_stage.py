"""The demo's world before any traffic: its own state, a deployment repository, labelled
history in Feast, and v1 trained, promoted by a commit."""

from __future__ import annotations

import shlex
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from driftloop.gitops import Git, Promotion, promote
from driftloop.settings import Settings
from driftloop_demo._config import DemoConfig

DRAWN_AT = datetime(2026, 6, 1, tzinfo=UTC)
"""Where a seasonless demo history is drawn before it is moved to end now (see
``BackfillConfig.drawn_at``)."""

Echo = Callable[[str], None]


def demo_settings(base: Settings, root: Path, stamp: str) -> Settings:
    """``base`` (where Kafka and Ray are) with everything the loop writes under ``root``,
    its own topics, and git pointing at the demo's deployment repository."""
    state = root / "state"
    repo = root / "deploy-repo"
    return base.model_copy(
        update={
            "state_dir": state,
            "topic_prefix": f"{base.topic_prefix}demo-{stamp}.",
            "feature_data_uri": str(state / "features"),
            "model_store_uri": str(state / "models"),
            "runs_uri": str(state / "runs"),
            "git_repo": str(repo),
            "git_branch": "main",
            "deploy_dir": repo / "deploy",
            "promotion_policy": "merge",
        }
    )


def write_environment(settings: Settings, path: Path) -> Path:
    """A shell file of the ``DRIFTLOOP_*`` variables that make ``Settings()`` equal
    ``settings`` (secrets left out): ``source`` it and the CLI — ``driftloop runs``,
    ``driftloop drift report``, ``driftloop sync status`` — reads the demo's state, topics
    and deployment repository instead of ``.driftloop/``."""
    from driftloop.runs import settings_environment

    lines = ["# the demo's settings: `source` this file, then run driftloop's CLI"]
    for name, value in sorted(settings_environment(settings).items()):
        lines.append(f"export {name}={shlex.quote(value)}")
    path.write_text("\n".join(lines) + "\n")
    return path


def _serve_config(
    document: dict[str, Any], settings: Settings, config: DemoConfig
) -> dict[str, Any]:
    """The shipped serve.yaml pointed at the demo's state: the replica reads its features,
    models and topics; a fixed number of replicas that reserve no CPU, so retraining on a
    two-core Ray cluster is not starved by the endpoint."""
    for application in document.get("applications") or []:
        application.setdefault("args", {}).update(
            {
                "topic_prefix": settings.topic_prefix,
                "model_store_uri": settings.model_store,
                "feature_env": settings.feature_env,
                "feature_data_uri": settings.feature_data,
                "state_dir": str(settings.state_dir),
            }
        )
        for deployment in application.get("deployments") or []:
            deployment.pop("autoscaling_config", None)
            deployment["num_replicas"] = config.replicas
            deployment["ray_actor_options"] = {"num_cpus": 0}
    return document


def _monitor_policy(document: dict[str, Any], config: DemoConfig) -> dict[str, Any]:
    """The shipped monitor policy with windows sized for minutes of traffic, and the
    training-serving skew check on (or off, as the config says)."""
    window = document.setdefault("window", {})
    # windows by count only: event time runs hundreds of times faster than the wall clock
    window.update(
        {"rows": config.window_rows, "min_rows": config.window_min_rows, "duration_s": None}
    )
    performance = document.setdefault("performance", {})
    performance.update(
        {
            "labels": config.performance_labels,
            "step": config.performance_labels,
            "min_positives": config.performance_min_positives,
        }
    )
    document.setdefault("skew", {})["enabled"] = config.skew_check
    return document


def _trigger_policy(document: dict[str, Any], config: DemoConfig) -> dict[str, Any]:
    """The shipped trigger policy with the window and the evidence sized for minutes of
    traffic (the cooldown, budget and follow-up rules as shipped)."""
    document["window"] = f"{config.retrain_days * 24:g}h"
    document["evidence"] = {
        "min_labelled_rows": config.evidence_rows,
        "min_positives": config.evidence_positives,
        "max_wait": f"{config.evidence_max_wait_m}m",
    }
    return document


def _edit_yaml(path: Path, edit: Callable[[dict[str, Any]], dict[str, Any]], header: str) -> None:
    document = yaml.safe_load(path.read_text()) or {}
    path.write_text(header + yaml.safe_dump(edit(document), sort_keys=False))


def deployment_repository(
    settings: Settings, source_deploy: Path, config: DemoConfig
) -> tuple[Path, str]:
    """A git repository holding a copy of ``deploy/`` adapted to the demo: the record the
    retraining run commits to and the sync service applies. Returns (path, first commit)."""
    repo = Path(settings.git_repo)
    deploy = repo / "deploy"
    shutil.copytree(source_deploy, deploy, ignore=shutil.ignore_patterns("local", "__pycache__"))
    apps = deploy / "apps" / config.model
    note = "# Adapted by the demo from the repository's deploy/apps/{}/{}\n"
    _edit_yaml(
        apps / "serve.yaml",
        lambda d: _serve_config(d, settings, config),
        note.format(config.model, "serve.yaml"),
    )
    _edit_yaml(
        apps / "trigger.yaml",
        lambda d: _trigger_policy(d, config),
        note.format(config.model, "trigger.yaml"),
    )
    _edit_yaml(
        apps / "monitor.yaml",
        lambda d: _monitor_policy(d, config),
        note.format(config.model, "monitor.yaml"),
    )
    git = Git(repo)
    git.run("init", "--quiet", "--initial-branch", settings.git_branch)
    git.run("config", "user.name", "driftloop demo")
    git.run("config", "user.email", "demo@driftloop.invalid")
    git.run("add", ".")
    git.run("commit", "--quiet", "-m", "deploy: the fraud model's deployment, no model yet")
    return repo, git.rev("HEAD")


@dataclass(frozen=True)
class History:
    rows: int
    fraud: float
    start: datetime
    end: datetime
    seconds: float


def labelled_history(settings: Settings, config: DemoConfig, echo: Echo) -> History:
    """Simulated labelled history up to now → parquet → Feast batch sources → registry →
    online store."""
    from driftloop_simulator import BackfillConfig, GeneratorConfig, backfill

    from driftloop.features import apply_repo, backfill_sources, materialize

    started = time.perf_counter()
    end = datetime.now(UTC).replace(microsecond=0)
    history = BackfillConfig(
        world=_world(config),
        generator=GeneratorConfig(
            tx_per_day=config.history_tx_per_day,
            fraud_rate=config.fraud_rate,
            weekly=config.seasonal,
            daily=config.seasonal,
        ),
        days=config.history_days,
        end=end,
        # a seasonless world is drawn in one fixed frame and moved to end now: the seed
        # alone decides the history, not the date it is run on
        drawn_at=None if config.seasonal else DRAWN_AT,
        # labels arrive within hours rather than weeks, so most of the history is labelled
        fraud_label_delay_days=0.1,
        legit_label_delay_days=0.2,
    )
    result = backfill(history)
    result.write(settings.state_dir / "data")
    tx = result.transactions
    echo(
        f"history: {len(tx):,} payments over {config.history_days:g} days, "
        f"fraud {tx['is_fraud'].mean():.2%}"
    )
    for name, (rows, _, seconds) in backfill_sources(settings, tx, end).items():
        echo(f"features: {name} {rows:,} rows ({seconds:.1f} s)")
    apply_repo(settings)
    materialize(settings, end + timedelta(seconds=1))
    echo("features: registry applied, online store materialized")
    return History(
        len(tx), float(tx["is_fraud"].mean()), history.start, end, time.perf_counter() - started
    )


def _world(config: DemoConfig) -> Any:
    from driftloop_simulator import WorldConfig

    return WorldConfig(seed=config.seed, n_customers=config.customers, n_merchants=config.merchants)


@dataclass(frozen=True)
class FirstModel:
    version: str
    metrics: dict[str, float]
    promotion: Promotion
    seconds: float


def first_model(settings: Settings, config: DemoConfig, history: History, echo: Echo) -> FirstModel:
    """v1: trained on Ray Train from Feast, stored, and declared in git by a commit."""
    from driftloop.models import ModelStore, TrainingWindow
    from driftloop.training import load_model_spec, train_model

    started = time.perf_counter()
    spec = load_model_spec(settings.deploy_dir / "apps" / config.model / "model.yaml")
    result = train_model(
        spec,
        TrainingWindow(start=history.end - timedelta(days=config.train_days), end=history.end),
        settings,
        store=ModelStore.from_settings(settings),
        progress=lambda line: echo(f"train v1: {line}"),
    )
    if not result.gate.passed:
        raise RuntimeError("v1 failed its own gate: " + "; ".join(result.gate.reasons))
    promotion = promote(
        settings,
        config.model,
        result.version,
        evaluation={
            "metrics": result.metrics,
            "baseline": result.baseline_metrics,
            "gate": result.gate.model_dump(),
        },
        reason="demo: the first model",
    )
    echo(
        f"v1: {result.version} PR-AUC {result.metrics.get('pr_auc', float('nan')):.3f}, "
        f"promoted by commit {(promotion.commit or '?')[:10]}"
    )
    return FirstModel(
        result.version, dict(result.metrics), promotion, time.perf_counter() - started
    )
