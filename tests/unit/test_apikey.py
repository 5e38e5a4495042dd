"""The Serve endpoint's API key: made once in the state directory, read by clients
(environment first, then the file), shown by its fingerprint only."""

from __future__ import annotations

import hashlib
import stat

import pytest

from driftloop.apikey import (
    API_KEY_HEADER,
    client_headers,
    describe,
    ensure_key,
    fingerprint,
    key_source,
    read_key,
)
from driftloop.settings import Settings


@pytest.fixture(autouse=True)
def _no_key_in_the_environment(monkeypatch):
    for name in ("DRIFTLOOP_SERVE_API_KEY", "DRIFTLOOP_SERVE_API_KEY_PATH", "DRIFTLOOP_SERVE_AUTH"):
        monkeypatch.delenv(name, raising=False)


def test_the_key_file_is_in_the_state_directory_unless_set(tmp_path, monkeypatch):
    settings = Settings(state_dir=tmp_path / "state")
    assert settings.serve_api_key_path == tmp_path / "state" / "serve-api-key"
    assert settings.serve_auth == "key"
    # A copy for another state directory (the demo's, a test's) still names the stack's key.
    other = settings.model_copy(update={"state_dir": tmp_path / "other"})
    assert other.serve_api_key_path == tmp_path / "state" / "serve-api-key"
    monkeypatch.setenv("DRIFTLOOP_SERVE_API_KEY_PATH", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("DRIFTLOOP_SERVE_AUTH", "off")
    settings = Settings(state_dir=tmp_path / "state")
    assert settings.serve_api_key_path == tmp_path / "elsewhere"
    assert settings.serve_auth == "off"


def test_the_key_is_made_once_readable_by_its_owner_only(tmp_path):
    settings = Settings(state_dir=tmp_path / "state")
    assert ensure_key(settings) is True
    path = settings.serve_api_key_path
    key = path.read_text().strip()
    assert len(key) >= 40 and key.isascii()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ensure_key(settings) is False
    assert path.read_text().strip() == key
    assert sorted(p.name for p in path.parent.iterdir()) == ["serve-api-key"]  # no leftovers
    assert ensure_key(Settings(state_dir=tmp_path / "again")) is True  # a new stack, a new key
    assert (tmp_path / "again" / "serve-api-key").read_text().strip() != key


def test_a_key_already_there_is_never_replaced(tmp_path):
    settings = Settings(state_dir=tmp_path)
    settings.serve_api_key_path.write_text("chosen-by-the-user\n")
    assert ensure_key(settings) is False
    assert read_key(settings) == "chosen-by-the-user"
    settings.serve_api_key_path.write_text("")
    with pytest.raises(RuntimeError, match="is empty: remove it"):
        ensure_key(settings)
    assert settings.serve_api_key_path.read_text() == ""


def test_a_client_takes_the_environment_s_key_then_the_file_s(tmp_path, monkeypatch):
    settings = Settings(state_dir=tmp_path)
    assert read_key(settings) is None and client_headers(settings) == {}
    settings.serve_api_key_path.write_text("from-the-file\n")
    assert read_key(settings) == "from-the-file"
    assert client_headers(settings) == {API_KEY_HEADER: "from-the-file"}
    assert key_source(settings) == str(settings.serve_api_key_path)
    monkeypatch.setenv("DRIFTLOOP_SERVE_API_KEY", "from-the-environment")
    settings = Settings(state_dir=tmp_path)
    assert client_headers(settings) == {API_KEY_HEADER: "from-the-environment"}
    assert key_source(settings) == "$DRIFTLOOP_SERVE_API_KEY"


def test_status_shows_where_the_key_is_and_its_fingerprint_never_the_key(tmp_path, monkeypatch):
    settings = Settings(state_dir=tmp_path)
    assert describe(settings)["api_key"] == "missing: `driftloop up` makes it"
    ensure_key(settings)
    key = settings.serve_api_key_path.read_text().strip()
    shown = describe(settings)
    assert shown == {
        "auth": "X-API-Key required on the scoring routes",
        "api_key_file": str(settings.serve_api_key_path),
        "api_key_sha256": hashlib.sha256(key.encode()).hexdigest()[:8],
    }
    assert key not in repr(shown)
    monkeypatch.setenv("DRIFTLOOP_SERVE_API_KEY", "secret-of-the-environment")
    shown = describe(Settings(state_dir=tmp_path))
    assert shown["api_key"] == "from DRIFTLOOP_SERVE_API_KEY"
    assert shown["api_key_sha256"] == fingerprint("secret-of-the-environment")
    assert "secret-of-the-environment" not in repr(shown)
    off = describe(Settings(state_dir=tmp_path, serve_auth="off"))
    assert off == {"auth": "off (DRIFTLOOP_SERVE_AUTH=off): the scoring routes are open"}
