"""A rollback event of the monitor acted on in git: a ``git revert`` of the promotion of
the version that regressed, at most once.

What git declares now decides: a version that no longer serves (rolled back before a
restart, or replaced meanwhile) makes no commit, and a revert this event made before a
crash is recognised by its ``Trigger-Event:`` trailer and reported as its own. Within the
policy's cooldown after the model's last rollback nothing is reverted (no flapping).
"""

from __future__ import annotations

from datetime import datetime

from driftloop.deployments import STORE_SCHEME
from driftloop.events import DriftEvent
from driftloop.gitops import PromotionRefused, committed_by, declared_on_target, rollback
from driftloop.settings import Settings
from driftloop_trigger._policy import TriggerPolicy
from driftloop_trigger._verdict import Acted

REASON = "rollback"


def act_on_rollback(
    settings: Settings,
    event: DriftEvent,
    policy: TriggerPolicy | None,
    last_rollback: datetime | None,
    now: datetime,
) -> Acted:
    """Revert the promotion a rollback event names, if git still serves that version and
    the model is not cooling down from a rollback. Raises on failures worth another
    attempt (git away)."""
    regression = event.regression
    if regression is None:
        raise ValueError(f"event {event.event_id} is not a rollback")
    model, version = event.model_name, event.model_version
    if policy is None:
        return Acted("skipped", f"no trigger.yaml for model {model}")
    if not policy.enabled or not policy.rollback.enabled:
        return Acted("skipped", f"rollbacks of {model} are disabled")
    own = committed_by(settings, model, event.event_id)
    if own is not None:  # made before a restart, not recorded
        return Acted("rolled_back", f"by this event's commit {own[:12]}", own)
    serving, _ = declared_on_target(settings, model)
    if serving != f"{STORE_SCHEME}{model}/{version}":
        return Acted("skipped", f"{version} no longer serves ({settings.git_branch} declares"
                     f" {serving or 'nothing'})")  # fmt: skip
    if last_rollback is not None and now < last_rollback + policy.rollback.cooldown:
        since, until = last_rollback, last_rollback + policy.rollback.cooldown
        return Acted("skipped", f"cooling down after the rollback of {since:%Y-%m-%d %H:%M:%S}"
                     f" until {until:%Y-%m-%d %H:%M:%S}")  # fmt: skip
    try:
        made = rollback(settings, model, version, regression.previous_version, live=event,
                        reason=REASON, trigger_event_id=event.event_id)  # fmt: skip
    except PromotionRefused as exc:
        return Acted("refused", str(exc))
    if not made.changed:
        return Acted("skipped", made.message, made.commit)
    where = f"pull request {made.pull_request}" if made.pull_request else f"commit {made.commit}"
    return Acted("rolled_back", f"{version} back to {regression.previous_version}: {where}",
                 made.commit)  # fmt: skip
