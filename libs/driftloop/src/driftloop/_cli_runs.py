"""``driftloop retrain``, ``driftloop runs`` and ``driftloop promote``."""

from __future__ import annotations

import json
import time
from typing import Annotated

import typer

from driftloop.settings import get_settings

runs_app = typer.Typer(
    help="Workflow runs (the local executor on Ray).", invoke_without_command=True
)


def retrain(
    model: Annotated[str, typer.Option(help="the model to retrain")] = "fraud",
    reason: Annotated[str, typer.Option(help="why: manual, schedule, drift, ...")] = "manual",
    window: Annotated[str, typer.Option(help="labelled history, e.g. 7d")] = "7d",
    window_end: Annotated[str, typer.Option(help="window end (ISO, UTC); default now")] = "",
    trigger_event_id: Annotated[str, typer.Option(help="the event that asked for it")] = "",
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="follow the run")] = True,
) -> None:
    """Run the retraining workflow (driftloop-retrain) for a model."""
    from driftloop.raycluster import RayApiError
    from driftloop.runs import (
        SubmitError,
        UnsupportedFeature,
        backend,
        manual_run_id,
        run_id_for_event,
    )

    settings = get_settings()
    try:
        runner = backend(settings)
    except (FileNotFoundError, UnsupportedFeature) as exc:
        typer.secho(f"error: {exc}", err=True, fg="red")
        raise typer.Exit(1) from exc
    run_id = run_id_for_event(trigger_event_id) if trigger_event_id else manual_run_id(model)
    parameters = {"model": model, "reason": reason, "window": window,
                  "window-end": window_end, "trigger-event-id": trigger_event_id}  # fmt: skip
    try:
        submitted = runner.submit(parameters, run_id)
    except SubmitError as exc:
        typer.secho(f"error: {exc}", err=True, fg="red")
        raise typer.Exit(1) from exc
    except (OSError, RayApiError) as exc:  # the local executor recorded the run first
        what = "refused the job" if isinstance(exc, RayApiError) else "is not reachable"
        # a manual run's id is new each time: only an event's id makes a resubmission safe
        again = ", as does this command again (the same run)" if trigger_event_id else ""
        typer.secho(
            f"error: run {run_id} is recorded, but Ray at {settings.dashboard_url} {what} "
            f"({exc}); `driftloop runs` starts it once Ray answers{again}",
            err=True,
            fg="red",
        )
        raise typer.Exit(1) from exc
    verb = "submitted" if submitted.created else "already submitted"
    typer.echo(f"{verb} {run_id} ({submitted.backend}); Ray dashboard: {settings.dashboard_url}")
    if not wait or submitted.backend != "local":
        return
    from driftloop.runs import RunStore

    store, seen = RunStore(settings.runs), ""
    while True:
        record = store.get(run_id)
        line = " ".join(f"{s.name}:{s.status}" for s in record.steps.values())
        if line != seen:
            typer.echo(f"  [{record.status}] {line} {record.message}".rstrip())
            seen = line
        if record.finished:
            break
        time.sleep(1)
    typer.echo(f"{run_id} {record.status} in {record.duration_s():.0f} s")
    if record.status != "succeeded":
        raise typer.Exit(1)


@runs_app.callback()
def runs(
    ctx: typer.Context,
    model: Annotated[str | None, typer.Option(help="only this model's runs")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List runs and their steps (runs without a live driver are started, resumed or failed
    first; with Ray unreachable they are listed as recorded), then models whose next run
    waits for labelled evidence (``status: waiting`` in --json)."""
    if ctx.invoked_subcommand is not None:
        return
    from driftloop.raycluster import RayApiError
    from driftloop.runs import LocalExecutor, RunStore, WaitingStore

    settings = get_settings()
    try:
        LocalExecutor(settings).recover()
    except (OSError, RayApiError) as exc:  # listing goes on; the runs are shown as recorded
        what = "refused the request" if isinstance(exc, RayApiError) else "is not reachable"
        typer.secho(
            f"warning: Ray at {settings.dashboard_url} {what} ({exc}); runs without a live"
            " driver are listed as recorded, not resumed",
            err=True,
            fg="yellow",
        )
    records = RunStore(settings.runs).all(model)
    waiting = WaitingStore(settings.runs).all(model)
    if as_json:
        listed = [r.model_dump(mode="json") for r in records]
        listed += [w.model_dump(mode="json") for w in waiting]
        typer.echo(json.dumps(listed, indent=2))
        return
    for r in records:
        typer.echo(f"{r.run_id}  {r.model}  {r.status:<9} {r.created_at:%Y-%m-%d %H:%M:%S}  "
                   f"{r.duration_s():6.0f} s  {r.parameters.get('reason', '')}")  # fmt: skip
        for step in r.steps.values():
            took = ""
            if step.started_at and step.finished_at:
                took = f"{(step.finished_at - step.started_at).total_seconds():.1f} s"
            where = "in driver" if step.driver else "ray job" if step.job else ""
            typer.echo(
                f"    {step.name:<14} {step.status:<9} attempts {step.attempts}  {took:>8}"
                f"  {where}".rstrip()
            )
    for w in waiting:
        typer.echo(w.line())


@runs_app.command("execute", hidden=True)
def execute(run_id: str) -> None:
    """Drive one run's DAG (what the driver Ray Job runs)."""
    import logging

    from driftloop.runs import LocalExecutor

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    record = LocalExecutor(get_settings()).execute(run_id)
    typer.echo(f"{run_id}: {record.status} {record.message}".rstrip())
    if record.status != "succeeded":
        raise typer.Exit(1)


def promote(
    version: Annotated[str, typer.Argument(help="a stored version id")],
    model: Annotated[str, typer.Option()] = "fraud",
    reason: Annotated[str, typer.Option()] = "manual",
    policy: Annotated[str | None, typer.Option(help="merge | pr (default from settings)")] = None,
    shadow: Annotated[
        bool, typer.Option("--shadow", help="declare it as the serving version's shadow")
    ] = False,
    canary: Annotated[
        bool, typer.Option("--canary", help="declare it as the canary answering --fraction")
    ] = False,
    fraction: Annotated[
        float | None,
        typer.Option(help="with --canary: the fraction of customers it answers (0 < f < 1)"),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="promote a version git records as rolled back")
    ] = False,
) -> None:
    """Declare a stored version in git (a commit on promote/<model>-<version>); with
    --shadow, as the shadow scored beside the serving version (shadow/<model>-<version>);
    with --canary --fraction f, as the canary answering the payments of that fraction of
    the customers (canary/<model>-<version>)."""
    from driftloop.gitops import PromotionRefused
    from driftloop.gitops import promote as make

    if canary != (fraction is not None) or (fraction is not None and not 0 < fraction < 1):
        raise typer.BadParameter("--canary and --fraction (0 < f < 1) go together")
    if canary and shadow:
        raise typer.BadParameter("--shadow or --canary, not both")
    try:
        done = make(get_settings(), model, version, reason=reason, policy=policy,
                    as_shadow=shadow, as_canary=fraction, force=force)  # fmt: skip
    except PromotionRefused as exc:
        typer.secho(f"refused: {exc}", err=True, fg="red")
        raise typer.Exit(1) from exc
    if not done.changed:
        typer.echo(f"{model} {version}: {done.message} on {done.commit}")
        return
    what = "declared the shadow" if shadow else "declared the canary" if canary else "promoted"
    typer.echo(f"{what} {model} {version}: {done.branch} at {done.commit} ({done.policy})")
    if done.pull_request:
        typer.echo(f"pull request: {done.pull_request}")
