"""Reading what git declares: the serve configs of every model at the branch's head.

A local repository is read in place (``git show <sha>:<path>``, no checkout, nothing in
anyone's working tree changes); a URL is mirrored under the state directory and fetched."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from driftloop.deployments import ServeConfigError
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
            self.git = Git(state_dir / "sync" / "mirror.git")
            self.ref = f"refs/heads/{branch}"
            self.remote = repo

    def head(self) -> str:
        if self.remote is not None:
            mirror = self.git.directory
            if not mirror.exists():  # cloned here, not at start: a remote that is down
                mirror.parent.mkdir(parents=True, exist_ok=True)  # is an error of one pass
                Git(mirror.parent).run("clone", "--bare", "--quiet", self.remote, str(mirror))
            self.git.run("fetch", "--quiet", "--prune", "origin", f"+{self.ref}:{self.ref}")
        return self.git.rev(self.ref)

    def serve_configs(self, sha: str) -> dict[str, dict[str, Any]]:
        """``<model>`` → parsed serve.yaml at ``sha``; :class:`ServeConfigError` for a file
        that is not YAML or not a mapping (the commit is wrong, not the machine)."""
        names = self.git.run("ls-tree", "-r", "--name-only", sha, "--", self.apps_dir)
        out: dict[str, dict[str, Any]] = {}
        for path in sorted(names.splitlines()):
            parts = path.split("/")
            if parts[-1] != "serve.yaml" or len(parts) != len(self.apps_dir.split("/")) + 2:
                continue
            try:
                document = yaml.safe_load(self.git.run("show", f"{sha}:{path}"))
            except yaml.YAMLError as exc:
                raise ServeConfigError(f"{path} at {sha[:12]} is not valid YAML: {exc}") from None
            if not isinstance(document, dict):
                raise ServeConfigError(f"{path} at {sha[:12]} is not a mapping")
            out[parts[-2]] = document
        return out
