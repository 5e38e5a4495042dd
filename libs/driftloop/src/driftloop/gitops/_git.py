"""A thin, typed wrapper over the git command line (the one git everyone has)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

# Commits made by driftloop carry its own identity, whatever the machine's git config.
IDENTITY = {
    "GIT_AUTHOR_NAME": "driftloop",
    "GIT_AUTHOR_EMAIL": "driftloop@localhost",
    "GIT_COMMITTER_NAME": "driftloop",
    "GIT_COMMITTER_EMAIL": "driftloop@localhost",
}


class GitError(RuntimeError):
    """A git command failed; the message carries its stderr."""


class Git:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def run(self, *args: str, check: bool = True, stdin: str | None = None) -> str:
        result = subprocess.run(
            ["git", "--no-optional-locks", "-C", str(self.directory), *args],
            capture_output=True, text=True, timeout=120, check=False, input=stdin,
            env={**os.environ, **IDENTITY},
        )  # fmt: skip
        if check and result.returncode != 0:
            raise GitError(f"git {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout

    def ok(self, *args: str) -> bool:
        try:
            self.run(*args)
        except GitError:
            return False
        return True

    def rev(self, ref: str) -> str:
        return self.run("rev-parse", "--verify", f"{ref}^{{commit}}").strip()

    def rev_or_none(self, ref: str) -> str | None:
        try:
            return self.rev(ref)
        except GitError:
            return None

    def show(self, ref: str, path: str) -> str | None:
        """A file's content at ``ref``, or None where it does not exist."""
        try:
            return self.run("show", f"{ref}:{path}")
        except GitError:
            return None

    def current_branch(self) -> str | None:
        name = self.run("symbolic-ref", "--quiet", "--short", "HEAD", check=False).strip()
        return name or None

    def is_ancestor(self, older: str, newer: str) -> bool:
        return self.ok("merge-base", "--is-ancestor", older, newer)

    def changed_paths(self, old: str, new: str) -> list[str]:
        return [p for p in self.run("diff", "--name-only", old, new).splitlines() if p]
