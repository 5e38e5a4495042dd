"""Git as the record of what runs: promotions as commits under ``deploy/``."""

from driftloop.gitops._git import Git, GitError
from driftloop.gitops._promote import (
    Promotion,
    PromotionRefused,
    committed_by,
    declared_on_target,
    promote,
    remove_canary,
    remove_shadow,
    rollback,
    rolled_back_by,
)
from driftloop.gitops._serveconfig import (
    declared,
    declared_canary,
    declared_shadow,
    set_canary,
    set_model,
    set_shadow,
)
from driftloop.gitops._syncstate import SyncState, read_state, state_path, write_state

__all__ = [
    "Git",
    "GitError",
    "Promotion",
    "PromotionRefused",
    "SyncState",
    "committed_by",
    "declared",
    "declared_canary",
    "declared_on_target",
    "declared_shadow",
    "promote",
    "read_state",
    "remove_canary",
    "remove_shadow",
    "rollback",
    "rolled_back_by",
    "set_canary",
    "set_model",
    "set_shadow",
    "state_path",
    "write_state",
]
