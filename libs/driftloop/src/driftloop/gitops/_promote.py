"""Promotion: a model reaches production only as a commit under ``deploy/``.

``promote`` writes the version into the model's serve config on a branch
``promote/<model>-<version>`` (in a worktree of its own, so a person's checkout is never
touched), commits it with the record of why, and then, by policy:

- ``merge`` (the local default): fast-forwards the target branch to that commit;
- ``pr``: pushes the branch and opens a pull request (GitHub's REST API).

Nothing is ever force-pushed or rewritten. When the target branch moved meanwhile, the
commit is re-made on top of it if the move did not touch the serve config, and refused
with a clear message if it did.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from driftloop.deployments import STORE_SCHEME
from driftloop.gitops._git import Git, GitError
from driftloop.gitops._record import commit_message, removal_message, revert_message
from driftloop.gitops._serveconfig import (
    declared,
    declared_canary,
    declared_shadow,
    set_canary,
    set_model,
    set_shadow,
)
from driftloop.settings import Settings

if TYPE_CHECKING:
    from driftloop.events import DriftEvent


class PromotionRefused(RuntimeError):
    """The promotion cannot be made without overriding a change someone else made."""


@dataclass(frozen=True)
class Promotion:
    model: str
    version: str
    branch: str
    commit: str | None
    policy: str
    changed: bool
    message: str
    pull_request: str | None = None
    notes: list[str] = field(default_factory=list)
    earlier: bool = False
    """Nothing changed because this trigger event's own promotion is already on the target
    (a step run again after its driver died between moving the branch and saving the run):
    ``commit`` is that promotion's commit."""

    def summary(self) -> dict[str, Any]:
        return {
            "branch": self.branch, "commit": self.commit, "policy": self.policy,
            "pull_request": self.pull_request, "notes": self.notes,
        }  # fmt: skip


def _relative(settings: Settings, repo: Path, model: str) -> str:
    path = (settings.deploy_dir / "apps" / model / "serve.yaml").absolute()
    try:
        return path.relative_to(repo).as_posix()
    except ValueError:
        return f"deploy/apps/{model}/serve.yaml"


@dataclass
class _Target:
    """The target branch as a change to ``model``'s serve config starts from it."""

    git: Git
    branch: str
    path: str
    """the serve config, relative to the repository"""
    base: str
    """the branch's commit now"""

    @cached_property
    def current(self) -> str | None:
        """The serve config at ``base`` (None: the branch has none)."""
        return self.git.show(self.base, self.path)


def _target(settings: Settings, model: str) -> _Target:
    repo = Path(settings.git_repo).expanduser().absolute()
    git = Git(repo)
    base = git.rev(f"refs/heads/{settings.git_branch}")
    return _Target(git, settings.git_branch, _relative(settings, repo, model), base)


def promote(
    settings: Settings,
    model: str,
    version: str,
    *,
    evaluation: dict[str, Any] | None = None,
    trigger_event_id: str | None = None,
    reason: str = "manual",
    policy: str | None = None,
    as_shadow: bool = False,
    as_canary: float | None = None,
    live: DriftEvent | None = None,
    force: bool = False,
) -> Promotion:
    """Make git declare ``model``'s ``version``; see the module docstring. ``as_shadow``:
    declare it as the shadow of the serving version instead (``shadow_uri``), scored on
    every request beside it; ``as_canary``: as the canary answering that fraction of the
    customers (``canary_uri``, ``canary_fraction``). A shadow and a canary are never
    declared together (refused: remove the other first); a later promotion of any version
    ends either. ``live``:
    the shadow or canary verdict asking for this promotion, its evidence put in the message.

    A version the target records as rolled back (a revert with its ``Rolled-Back:``
    trailer) is refused unless ``force``: whatever promoted it (a run's evaluation, a
    shadow verdict) was contradicted by its live labels."""
    from driftloop.drift import AuditStore
    from driftloop.models import ModelStore

    chosen = policy or settings.promotion_policy
    stored = ModelStore.from_settings(settings).get(model, version)
    if as_shadow and as_canary is not None:
        raise ValueError("a version is declared as the shadow or as the canary, not both")
    role = "shadow" if as_shadow else "canary" if as_canary is not None else "promote"
    branch = f"{role}/{model}-{version}"
    on = _target(settings, model)
    git, target, path, base, current = on.git, on.branch, on.path, on.base, on.current
    if current is None:
        raise PromotionRefused(f"{target} has no {path}: nothing declares how {model} is served")
    uri, digest = declared(current, model)
    wanted = f"models:/{model}/{version}"
    now_uri, now_digest = uri, digest
    if role != "promote":
        if uri == wanted and digest == stored.sha256:
            return Promotion(model, version, branch, base, chosen, False, "already serving")
        if uri is None:
            raise PromotionRefused(f"{path} serves no {model} version to {role}; promote first")
        shadow_uri, shadow_digest = declared_shadow(current, model)
        canary_uri, canary_digest, fraction = declared_canary(current, model)
        other = canary_uri if as_shadow else shadow_uri
        if other is not None:
            other_role = "canary" if as_shadow else "shadow"
            raise PromotionRefused(
                f"{path} declares {other} as the {other_role}: one challenger at a time "
                f"(remove the {other_role} or promote it first)"
            )
        now_uri, now_digest = (shadow_uri, shadow_digest) if as_shadow else (
            (canary_uri, canary_digest) if fraction == as_canary else (None, None)
        )  # fmt: skip
    if now_uri == wanted and now_digest == stored.sha256:
        earlier = _promoted_by(git, base, path, trigger_event_id) if trigger_event_id else None
        if earlier is not None:
            why = f"already promoted by this event's commit {earlier[:12]}"
            return Promotion(model, version, branch, earlier, chosen, False, why, earlier=True)
        why = "already declared" if role == "promote" else f"already the {role}"
        return Promotion(model, version, branch, base, chosen, False, why)
    reverted = None if role != "promote" or force else _rolled_back_by(git, base, path, version)
    if reverted is not None:
        raise PromotionRefused(
            f"{model} {version} was rolled back by {reverted[:12]} on {target} (a regression"
            " on live labels); promote it again only by hand, with force"
        )
    audit_root = (settings.state_dir / "monitor").absolute()  # the monitor's default
    evidence = AuditStore(audit_root, model).find(trigger_event_id) if trigger_event_id else None
    message = commit_message(
        stored, path, evaluation, trigger_event_id, reason, uri,
        evidence=evidence, shadow=as_shadow, canary=as_canary, live=live,
    )  # fmt: skip
    if as_shadow:
        content = set_shadow(current, model, version, stored.sha256)
    elif as_canary is not None:
        content = set_canary(current, model, version, stored.sha256, as_canary)
    else:
        content = set_model(current, model, version, stored.sha256)
    return _land(git, settings, chosen, (model, version, branch), base, path, content, message)


def remove_shadow(
    settings: Settings,
    model: str,
    version: str,
    *,
    reason: str = "manual",
    trigger_event_id: str | None = None,
    live: DriftEvent | None = None,
    policy: str | None = None,
) -> Promotion:
    """Make git declare no shadow of ``model`` where ``version`` is its shadow: a commit
    on ``unshadow/<model>-<version>``, landed by the promotion policy like a promotion.
    Nothing changes (``changed`` False) where ``version`` is not the declared shadow."""
    return _remove(settings, model, version, "shadow", reason, trigger_event_id, live, policy)


def remove_canary(
    settings: Settings,
    model: str,
    version: str,
    *,
    reason: str = "manual",
    trigger_event_id: str | None = None,
    live: DriftEvent | None = None,
    policy: str | None = None,
) -> Promotion:
    """Make git declare no canary of ``model`` where ``version`` is its canary (its
    customers go back to the serving version): a commit on ``uncanary/<model>-<version>``,
    like ``remove_shadow``."""
    return _remove(settings, model, version, "canary", reason, trigger_event_id, live, policy)


def _remove(
    settings: Settings, model: str, version: str, role: str, reason: str,
    trigger_event_id: str | None, live: DriftEvent | None, policy: str | None,
) -> Promotion:  # fmt: skip
    chosen = policy or settings.promotion_policy
    branch = f"un{role}/{model}-{version}"
    on = _target(settings, model)
    git, target, path, base, current = on.git, on.branch, on.path, on.base, on.current
    if current is None:
        raise PromotionRefused(f"{target} has no {path}: nothing declares how {model} is served")
    now = declared_shadow(current, model)[0] if role == "shadow" else (
        declared_canary(current, model)[0]
    )  # fmt: skip
    if now != f"models:/{model}/{version}":
        return Promotion(model, version, branch, base, chosen, False, f"not the declared {role}")
    serving, _ = declared(current, model)
    message = removal_message(
        model, version, serving, path, reason, trigger_event_id, live, role=role
    )
    if role == "shadow":
        content = set_shadow(current, model, None, None)
    else:
        content = set_canary(current, model, None, None, None)
    return _land(git, settings, chosen, (model, version, branch), base, path, content, message)


def rollback(
    settings: Settings,
    model: str,
    version: str,
    previous: str,
    *,
    live: DriftEvent,
    reason: str = "rollback",
    trigger_event_id: str | None = None,
    policy: str | None = None,
) -> Promotion:
    """``git revert`` the commit that made ``version`` of ``model`` the serving one, which
    declares ``previous`` again, with ``live``'s regression as the evidence; landed by the
    promotion policy like a promotion (branch ``rollback/<model>-<version>``). Nothing
    changes (``changed`` False) where the target does not serve ``version``; refused where
    that promotion did not replace ``previous`` or cannot be reverted cleanly."""
    chosen = policy or settings.promotion_policy
    branch = f"rollback/{model}-{version}"
    on = _target(settings, model)
    git, target, path, base, current = on.git, on.branch, on.path, on.base, on.current
    wanted = f"{STORE_SCHEME}{model}/{version}"
    if current is None or declared(current, model)[0] != wanted:
        return Promotion(model, version, branch, base, chosen, False, "not the serving version")
    promotion = _promotion_of(git, base, path, model, wanted)
    if promotion is None:
        raise PromotionRefused(f"no commit on {target} made {version} the serving version")
    before = git.show(f"{promotion}^", path)
    replaced = declared(before, model)[0] if before is not None else None
    if replaced != f"{STORE_SCHEME}{model}/{previous}":
        raise PromotionRefused(
            f"{promotion[:12]} replaced {replaced or 'nothing'}, not {previous}: the regression"
            " was measured against another version than the revert would restore"
        )
    subject = git.run("log", "-1", "--format=%s", promotion).strip()
    message = revert_message(subject, promotion, path, reason, trigger_event_id, live)
    commit = _revert_on(git, settings, base, promotion, message)
    return _land_commit(git, settings, chosen, (model, version, branch), base, path, commit,
                        message)  # fmt: skip


def rolled_back_by(settings: Settings, model: str, version: str) -> str | None:
    """The revert on the target that rolled ``model``'s ``version`` back, if one did."""
    on = _target(settings, model)
    return _rolled_back_by(on.git, on.base, on.path, version)


def _rolled_back_by(git: Git, base: str, path: str, version: str) -> str | None:
    lines = git.run(
        "log", "--format=%H %(trailers:key=Rolled-Back,valueonly,separator=%x20)", base,
        "--", path,
    ).splitlines()  # fmt: skip
    for line in lines:
        sha, *values = line.split()
        if version in values:
            return sha
    return None


def _promotion_of(git: Git, base: str, path: str, model: str, wanted: str) -> str | None:
    """The commit up to ``base`` after which ``path`` declares ``wanted`` serving and
    before which it did not (the newest such change: ``wanted`` serves at ``base``)."""
    for sha in git.run("log", "--format=%H", base, "--", path).split():
        before = git.show(f"{sha}^", path)
        if before is None or declared(before, model)[0] != wanted:
            return sha
    return None


def _revert_on(git: Git, settings: Settings, base: str, commit: str, message: str) -> str:
    """``git revert`` of ``commit`` on top of ``base``, in a throwaway worktree; its sha."""
    place = settings.state_dir / "gitops" / f"worktree-{uuid.uuid4().hex[:12]}"
    place.parent.mkdir(parents=True, exist_ok=True)
    git.run("worktree", "add", "--detach", str(place), base)
    try:
        tree = Git(place)
        try:
            tree.run("revert", "--no-commit", commit)
        except GitError as exc:
            raise PromotionRefused(f"{commit[:12]} does not revert cleanly: {exc}") from exc
        tree.run("commit", "--quiet", "--file", "-", stdin=message)
        return tree.rev("HEAD")
    finally:
        git.run("worktree", "remove", "--force", str(place), check=False)
        shutil.rmtree(place, ignore_errors=True)
        git.run("worktree", "prune", check=False)


def _land(
    git: Git,
    settings: Settings,
    chosen: str,
    what: tuple[str, str, str],
    base: str,
    path: str,
    content: str,
    message: str,
) -> Promotion:
    """Commit ``content`` of ``path`` on ``base`` and land it by the policy: a pull request
    from the branch, or a fast-forward of the target. ``what``: (model, version, branch)."""
    commit = _commit_on(git, settings, base, path, content, message)
    return _land_commit(git, settings, chosen, what, base, path, commit, message)


def _land_commit(
    git: Git,
    settings: Settings,
    chosen: str,
    what: tuple[str, str, str],
    base: str,
    path: str,
    commit: str,
    message: str,
) -> Promotion:
    """Land ``commit`` (made on ``base``) by the policy; see ``_land``."""
    model, version, branch = what
    target = settings.git_branch
    _set_branch(git, branch, commit)
    if chosen == "pr":
        from driftloop.gitops._github import open_pull_request

        url = open_pull_request(settings, git, branch, target, message)
        return Promotion(model, version, branch, commit, chosen, True, message, url)
    commit = _fast_forward(git, settings, target, base, commit, path, message)
    _set_branch(git, branch, commit)
    return Promotion(model, version, branch, commit, chosen, True, message)


def declared_on_target(
    settings: Settings, model: str, role: Literal["shadow", "canary"] = "shadow"
) -> tuple[str | None, str | None]:
    """(serving ``model_uri``, ``shadow_uri``, or ``canary_uri`` for ``role`` canary) of
    ``model`` on the target branch now."""
    text = _target(settings, model).current
    if text is None:
        return None, None
    beside = declared_shadow(text, model) if role == "shadow" else declared_canary(text, model)
    return declared(text, model)[0], beside[0]


def committed_by(settings: Settings, model: str, trigger_event_id: str) -> str | None:
    """The target's last commit changing ``model``'s serve config, if it was made for
    ``trigger_event_id`` (its ``Trigger-Event:`` trailer)."""
    on = _target(settings, model)
    return _promoted_by(on.git, on.base, on.path, trigger_event_id)


def _promoted_by(git: Git, base: str, path: str, trigger_event_id: str) -> str | None:
    """The commit that last changed ``path`` up to ``base``, if its ``Trigger-Event:``
    trailer (git's own trailer parsing) is ``trigger_event_id``."""
    found = git.run(
        "log", "-1", "--format=%H %(trailers:key=Trigger-Event,valueonly,separator=%x20)",
        base, "--", path,
    ).split()  # fmt: skip
    return found[0] if found[1:] == [trigger_event_id] else None


def _set_branch(git: Git, branch: str, commit: str) -> None:
    """Point the local promotion branch at ``commit`` (it is ours; it was never pushed
    unless the policy is ``pr``, which pushes it once, after this)."""
    git.run("update-ref", f"refs/heads/{branch}", commit)


def _commit_on(
    git: Git, settings: Settings, base: str, path: str, content: str, message: str
) -> str:
    """A commit on top of ``base`` changing ``path`` to ``content``, made in a throwaway
    worktree; returns its sha."""
    place = settings.state_dir / "gitops" / f"worktree-{uuid.uuid4().hex[:12]}"
    place.parent.mkdir(parents=True, exist_ok=True)
    git.run("worktree", "add", "--detach", str(place), base)
    try:
        tree = Git(place)
        (place / path).parent.mkdir(parents=True, exist_ok=True)
        (place / path).write_text(content)
        tree.run("add", path)
        _rerender(place, tree)
        tree.run("commit", "--quiet", "--file", "-", stdin=message)
        return tree.rev("HEAD")
    finally:
        git.run("worktree", "remove", "--force", str(place), check=False)
        shutil.rmtree(place, ignore_errors=True)
        git.run("worktree", "prune", check=False)


RENDERED = "deploy/k8s/base/serving/serve-config.yaml"
"""Where a repository that carries Kubernetes manifests keeps the RayService's serve
config, rendered from the serve.yaml files; a promotion re-renders it in the same commit."""


def _rerender(place: Path, tree: Git) -> None:
    if not (place / RENDERED).is_file():
        return  # a deploy repository without Kubernetes manifests
    # A process, not an import: libraries never import workflows/ (imports point one way).
    # Only what serve.yaml renders to: a promotion commits that and nothing else (and the
    # full render's Hera import cost the promote step about 10 s under the demo's load).
    command = [
        sys.executable, "-m", "driftloop_workflows.render", "--serve-config", "--root", str(place),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    if result.returncode != 0:
        raise PromotionRefused(f"re-rendering the manifests failed: {result.stderr[-2000:]}")
    tree.run("add", "--all", "deploy/k8s")


def _fast_forward(
    git: Git, settings: Settings, target: str, base: str, commit: str, path: str, message: str
) -> str:
    """Move ``target`` from ``base`` to ``commit`` without losing anyone's work."""
    for _ in range(3):
        now = git.rev(f"refs/heads/{target}")
        if now != base:
            if path in git.changed_paths(base, now):
                raise PromotionRefused(
                    f"{target} moved from {base[:12]} to {now[:12]} and changed {path} "
                    "meanwhile; promote again once that change is settled"
                )
            # The move did not touch the serve config: make the same change on top of it.
            content = git.show(commit, path)
            assert content is not None
            base, commit = now, _commit_on(git, settings, now, path, content, message)
        checked_out = _worktree_of(git, target)
        if checked_out is not None:
            # Someone's checkout is on the target: update it the way they would.
            try:
                Git(checked_out).run("merge", "--ff-only", "--quiet", commit)
            except GitError as exc:
                raise PromotionRefused(
                    f"cannot fast-forward the checkout of {target} at {checked_out}: {exc}"
                ) from exc
            return commit
        if git.ok("update-ref", f"refs/heads/{target}", commit, base):
            return commit
    raise PromotionRefused(f"{target} keeps moving; promote again later")


def _worktree_of(git: Git, branch: str) -> Path | None:
    """The worktree that has ``branch`` checked out, if any."""
    current: Path | None = None
    for line in git.run("worktree", "list", "--porcelain").splitlines():
        if line.startswith("worktree "):
            current = Path(line.removeprefix("worktree "))
        elif line == f"branch refs/heads/{branch}":
            return current
    return None
