"""Opening a pull request for a promotion branch through GitHub's REST API."""

from __future__ import annotations

import json
import re
import urllib.request

from driftloop.gitops._git import Git
from driftloop.settings import Settings

_REMOTE = re.compile(r"github\.com[:/](?P<owner>[^/]+)/(?P<name>[^/]+?)(?:\.git)?/?$")


def repository_of(url: str) -> tuple[str, str]:
    """(owner, name) of a GitHub remote URL (https or ssh form)."""
    match = _REMOTE.search(url)
    if not match:
        raise ValueError(f"remote {url!r} is not a GitHub repository")
    return match.group("owner"), match.group("name")


def open_pull_request(settings: Settings, git: Git, branch: str, target: str, message: str) -> str:
    """Push ``branch`` (never forced) and open a pull request into ``target``; its URL."""
    if settings.github_token is None:
        raise RuntimeError("promotion policy 'pr' needs DRIFTLOOP_GITHUB_TOKEN")
    if settings.github_repository:
        owner, _, name = settings.github_repository.partition("/")
    else:
        owner, name = repository_of(git.run("remote", "get-url", settings.git_remote).strip())
    git.run("push", settings.git_remote, f"refs/heads/{branch}:refs/heads/{branch}")
    title, _, body = message.partition("\n")
    api = settings.github_api.rstrip("/")
    if not api.startswith(("https://", "http://")):
        raise ValueError(f"github_api {api!r} is not an http(s) URL")
    payload = {"title": title, "head": branch, "base": target, "body": body.strip()}
    headers = {
        "Authorization": f"Bearer {settings.github_token.get_secret_value()}",
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": "2022-11-28",
        "Content-Type": "application/json",
    }
    url_ = f"{api}/repos/{owner}/{name}/pulls"
    data = json.dumps(payload).encode()
    request = urllib.request.Request(url_, data=data, headers=headers, method="POST")  # noqa: S310
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        created = json.loads(response.read())
    url: str = created["html_url"]
    return url
