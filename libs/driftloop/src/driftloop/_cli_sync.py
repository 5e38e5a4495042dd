"""``driftloop sync status``: what git declares, what Ray Serve runs, and the last error."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from driftloop.settings import get_settings

sync_app = typer.Typer(help="The git → Ray Serve sync service.", no_args_is_help=True)


@sync_app.command("status")
def status(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Git SHA vs the SHA Ray Serve runs, each application's health, the last error
    (``retrying``: the environment's error, tried again next interval; otherwise the
    commit ``failed_sha`` is not tried again until the branch moves)."""
    from driftloop.gitops import Git, GitError, read_state
    from driftloop.raycluster import RayApiError, declared_applications

    settings = get_settings()
    state = read_state(settings)
    repo, branch = (state.repo, state.branch) if state else (settings.git_repo, settings.git_branch)
    try:
        head: str | None = Git(Path(repo)).rev(f"refs/heads/{branch}")
    except (GitError, OSError):
        head = state.git_sha if state else None
    try:
        health = {n: a.get("status") for n, a in declared_applications(settings).items()}
    except (RayApiError, OSError) as exc:
        health = {"error": str(exc)}
    report = {
        "repo": repo, "branch": branch, "git_sha": head,
        "synced_sha": state.synced_sha if state else None,
        "in_sync": bool(state and head and state.synced_sha == head),
        "applications": health,
        "last_error": state.last_error if state else "the sync service has not run",
        "error_at": state.last_error_at.isoformat() if state and state.last_error_at else None,
        "retrying": bool(state and state.last_error and state.last_error_transient),
        "failed_sha": state.failed_sha if state else None,
        "last_apply": state.last_apply.isoformat() if state and state.last_apply else None,
        "heals": state.heals if state else 0,
    }  # fmt: skip
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    for key, value in report.items():
        typer.echo(f"{key:<12} {value}")
