"""Secure by default: a replica finds its API key (args, environment, then the key file) or
refuses to start, unless auth is switched off; the scoring routes' guard answers 401 to a
missing or wrong key. The whole app with its guard, in and out of Serve, is tested in
tests/integration (test_serving_contract.py, test_serving.py, test_security.py): a replica
connects its prediction log to Kafka as it starts."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from driftloop_serving import ApiKeyMissing, ServeArgs
from driftloop_serving._auth import key_guard, replica_key
from driftloop_serving._service import FraudServiceImpl
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr, ValidationError

KEY = "k3y-0f-the-test"


@pytest.fixture(autouse=True)
def _no_key_in_the_environment(tmp_path, monkeypatch):
    """The replica's environment: the stack's state directory is ``tmp_path/stack``."""
    for name in ("DRIFTLOOP_SERVE_API_KEY", "DRIFTLOOP_SERVE_API_KEY_PATH", "DRIFTLOOP_SERVE_AUTH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DRIFTLOOP_STATE_DIR", str(tmp_path / "stack"))
    (tmp_path / "stack").mkdir()


def _args(tmp_path: Any, **fields: Any) -> ServeArgs:
    """Args of a deployment with a state directory of its own (as tests and the demo)."""
    return ServeArgs.model_validate({"state_dir": str(tmp_path / "app"), **fields})


def test_a_replica_without_a_key_refuses_to_start_and_says_what_to_set(tmp_path):
    with pytest.raises(ApiKeyMissing) as refused:
        FraudServiceImpl(_args(tmp_path))  # refused before it starts any thread
    message = str(refused.value)
    named = [
        "DRIFTLOOP_SERVE_API_KEY ", "DRIFTLOOP_SERVE_API_KEY_PATH", "`driftloop up`",
        str(tmp_path / "stack" / "serve-api-key"), "DRIFTLOOP_SERVE_AUTH=off", "auth: 'off'",
    ]  # fmt: skip
    assert all(setting in message for setting in named), message


def test_the_replica_s_key_comes_from_args_then_environment_then_file(tmp_path, monkeypatch):
    args = _args(tmp_path)
    # the stack's key file, not one in the deployment's own state directory
    (tmp_path / "stack" / "serve-api-key").write_text("from-the-file\n")
    assert replica_key(args, args.settings()) == "from-the-file"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_text("from-the-path\n")
    monkeypatch.setenv("DRIFTLOOP_SERVE_API_KEY_PATH", str(elsewhere))
    assert replica_key(args, args.settings()) == "from-the-path"
    monkeypatch.setenv("DRIFTLOOP_SERVE_API_KEY", "from-the-environment")
    assert replica_key(args, args.settings()) == "from-the-environment"
    keyed = _args(tmp_path, api_key=KEY)
    assert replica_key(keyed, keyed.settings()) == KEY


def test_auth_is_off_only_when_switched_off(tmp_path, monkeypatch):
    off = _args(tmp_path, auth="off")
    assert replica_key(off, off.settings()) is None
    # serve.yaml is YAML 1.1 to Ray: an unquoted `off` is false, and means off here too.
    assert ServeArgs.model_validate(yaml.safe_load("auth: off")).auth == "off"
    with pytest.raises(ValidationError, match="api_key with auth 'off'"):
        _args(tmp_path, auth="off", api_key=KEY)
    monkeypatch.setenv("DRIFTLOOP_SERVE_AUTH", "off")
    assert replica_key(_args(tmp_path), _args(tmp_path).settings()) is None
    # A key in the args is asked for: it wins over the environment's switch.
    keyed = _args(tmp_path, api_key=SecretStr(KEY))
    assert replica_key(keyed, keyed.settings()) == KEY
    with pytest.raises(ApiKeyMissing):
        explicit = _args(tmp_path, auth="key")
        replica_key(explicit, explicit.settings())


def _app(key: str | None) -> FastAPI:
    app = FastAPI()

    @app.post("/predict", dependencies=key_guard(key))
    async def predict() -> dict[str, bool]:
        return {"scored": True}

    @app.get("/healthz")
    async def healthz() -> dict[str, bool]:
        return {"ready": True}

    return app


def test_with_a_key_scoring_needs_it_and_the_openapi_declares_it():
    with TestClient(_app(KEY)) as client:
        for headers in ({}, {"X-API-Key": ""}, {"X-API-Key": "wrong"}, {"X-API-Key": KEY.upper()},
                        {"X-API-Key": KEY[:-1]}, {"Authorization": f"Bearer {KEY}"}):  # fmt: skip
            r = client.post("/predict", headers=headers)
            assert (r.status_code, r.json()) == (401, {"detail": "missing or wrong X-API-Key"})
        assert client.post("/predict", params={"api_key": KEY}).status_code == 401
        assert client.post("/predict", headers={"X-API-Key": KEY}).json() == {"scored": True}
        assert client.post("/predict", headers={"x-api-key": KEY}).status_code == 200
        assert client.get("/healthz").status_code == 200
        spec = client.get("/openapi.json").json()
    assert spec["components"]["securitySchemes"] == {
        "APIKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"}
    }
    assert spec["paths"]["/predict"]["post"]["security"] == [{"APIKeyHeader": []}]
    assert "security" not in spec["paths"]["/healthz"]["get"]


def test_with_auth_off_scoring_needs_no_key():
    with TestClient(_app(None)) as client:
        assert client.post("/predict").json() == {"scored": True}
        assert client.post("/predict", headers={"X-API-Key": "anything"}).status_code == 200
        spec = client.get("/openapi.json").json()
    assert "securitySchemes" not in spec.get("components", {})
