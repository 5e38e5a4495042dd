"""Reading what git declares: the serve configs of every model at the branch's head.

A local repository is read in place (``git show <sha>:<path>``, no checkout, nothing in
anyone's working tree changes); a URL is mirrored under the state directory and fetched."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from driftloop.gitops import Git


class Source:
    def __init__(self, repo: str, branch: str, apps_dir: str, state_dir: Path) -> None:
        self.branch = branch
        self.apps_dir = apps_dir.strip("/")
        local = Path(repo).expanduser()
        if "://" not in repo and local.exists():
            self.git = Git(local.absolute())
            self.ref = f"refs/heads/{branch}"
            self.remote: str | None = None
        else:
            mirror = state_dir / "sync" / "mirror.git"
            if not mirror.exists():
                mirror.parent.mkdir(parents=True, exist_ok=True)
                Git(mirror.parent).run("clone", "--bare", "--quiet", repo, str(mirror))
            self.git = Git(mirror)
            self.ref = f"refs/heads/{branch}"
            self.remote = repo

    def head(self) -> str:
        if self.remote is not None:
            self.git.run("fetch", "--quiet", "--prune", "origin", f"+{self.ref}:{self.ref}")
        return self.git.rev(self.ref)

    def serve_configs(self, sha: str) -> dict[str, dict[str, Any]]:
        """``<model>`` → parsed serve.yaml at ``sha``."""
        names = self.git.run("ls-tree", "-r", "--name-only", sha, "--", self.apps_dir)
        out: dict[str, dict[str, Any]] = {}
        for path in sorted(names.splitlines()):
            parts = path.split("/")
            if parts[-1] != "serve.yaml" or len(parts) != len(self.apps_dir.split("/")) + 2:
                continue
            document = yaml.safe_load(self.git.run("show", f"{sha}:{path}"))
            if not isinstance(document, dict):
                raise ValueError(f"{path} at {sha[:12]} is not a mapping")
            out[parts[-2]] = document
        return out
