"""A shadow or canary verdict of the monitor acted on in git: a promotion of the challenger
(which ends the shadow or canary), its removal, or nothing, each at most once.

What git declares now decides, not what the verdict saw: a challenger that is no longer
declared in its role (removed or replaced by hand, or by this very verdict before a
restart), or a serving version that changed since the verdict, makes no commit. A change
this verdict made before a crash is recognised by its ``Trigger-Event:`` trailer and
reported as its own, so an event read again never makes a second commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from driftloop.deployments import STORE_SCHEME
from driftloop.events import DriftEvent
from driftloop.gitops import (
    PromotionRefused,
    committed_by,
    declared_on_target,
    promote,
    remove_canary,
    remove_shadow,
)
from driftloop.settings import Settings
from driftloop_trigger._policy import TriggerPolicy

Outcome = Literal["promoted", "removed", "kept", "skipped", "refused", "rolled_back"]


@dataclass(frozen=True)
class Acted:
    outcome: Outcome
    detail: str
    commit: str | None = None


def act(
    settings: Settings, event: DriftEvent, policy: TriggerPolicy | None, hold: str | None = None
) -> Acted:
    """Make the git change a shadow or canary verdict asks for, if git still declares what
    it saw. ``hold``: why no promotion is made now (the cooldown after a rollback). Raises
    on failures worth another attempt (git or the model store away)."""
    verdict = event.live_verdict
    if verdict is None:
        raise ValueError(f"event {event.event_id} is neither a shadow nor a canary verdict")
    role: Literal["shadow", "canary"] = "shadow" if event.shadow is not None else "canary"
    model, reason = event.model_name, event.kind
    if policy is None:
        return Acted("skipped", f"no trigger.yaml for model {model}")
    if not policy.enabled:
        return Acted("skipped", f"the trigger is disabled for {model}")
    if verdict.action == "keep":
        return Acted("kept", f"{verdict.verdict} at the deadline; the policy keeps the {role}")
    if hold is not None and verdict.action == "promote":
        return Acted("skipped", hold)
    serving, challenger = declared_on_target(settings, model, role)
    wanted = f"{STORE_SCHEME}{model}/{verdict.version}"
    own = committed_by(settings, model, event.event_id)
    if own is not None:  # made before a restart, not recorded
        done: Outcome = "promoted" if verdict.action == "promote" else "removed"
        return Acted(done, f"by this event's commit {own[:12]}", own)
    if challenger != wanted:
        return Acted("skipped", f"{verdict.version} is no longer the declared {role}"
                     f" ({settings.git_branch} declares {challenger or 'none'})")  # fmt: skip
    if serving != f"{STORE_SCHEME}{model}/{event.model_version}":
        return Acted("skipped", f"the verdict was against {event.model_version}, and"
                     f" {settings.git_branch} now serves {serving or 'nothing'}")  # fmt: skip
    try:
        if verdict.action == "promote":
            made = promote(settings, model, verdict.version, reason=reason,
                           trigger_event_id=event.event_id, live=event)  # fmt: skip
        else:
            remove = remove_shadow if role == "shadow" else remove_canary
            made = remove(settings, model, verdict.version, reason=reason,
                          trigger_event_id=event.event_id, live=event)  # fmt: skip
    except PromotionRefused as exc:
        return Acted("refused", str(exc))
    if not made.changed:
        return Acted("skipped", made.message, made.commit)
    where = f"pull request {made.pull_request}" if made.pull_request else f"commit {made.commit}"
    outcome: Outcome = "promoted" if verdict.action == "promote" else "removed"
    return Acted(outcome, f"{verdict.verdict} {role} {verdict.version}: {where}", made.commit)
