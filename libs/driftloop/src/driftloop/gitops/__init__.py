"""Git as the record of what runs: promotions as commits under ``deploy/``."""

from driftloop.gitops._git import Git, GitError
from driftloop.gitops._promote import Promotion, PromotionRefused, promote
from driftloop.gitops._serveconfig import declared, set_model

__all__ = ["Git", "GitError", "Promotion", "PromotionRefused", "declared", "promote", "set_model"]
