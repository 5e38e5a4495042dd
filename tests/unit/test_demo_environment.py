"""The demo's `driftloop.env`: sourcing it makes the CLI's Settings() the demo's own."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import pytest
from driftloop_demo._stage import demo_settings, write_environment
from pydantic import SecretStr

from driftloop.settings import Settings


def _exports(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        word, assignment = shlex.split(line)
        assert word == "export", line
        name, _, value = assignment.partition("=")
        out[name] = value
    return out


def test_sourcing_the_file_gives_the_demos_settings_and_no_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = Settings(
        github_token=SecretStr("ghp-not-for-files"),
        serve_api_key=SecretStr("serve-key-not-for-files"),
        topic_prefix="x.",
    )
    demo = demo_settings(base, tmp_path / "demo root with space", "20261205120000")
    path = write_environment(demo, tmp_path / "driftloop.env")
    text = path.read_text()
    assert "ghp-not-for-files" not in text and "GITHUB_TOKEN" not in text
    assert "serve-key-not-for-files" not in text and "SERVE_API_KEY=" not in text
    for name in list(os.environ):
        if name.startswith("DRIFTLOOP_"):
            monkeypatch.delenv(name)
    for name, value in _exports(path).items():
        monkeypatch.setenv(name, value)
    again = Settings()
    assert again == demo.model_copy(update={"github_token": None, "serve_api_key": None})
    # the stack's key file, not one in the demo's state directory
    assert again.serve_api_key_path == base.serve_api_key_path
    assert str(again.state_dir).endswith("demo root with space/state")
