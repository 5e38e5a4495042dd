"""The RayService on Kubernetes: its serveConfigV2 is every deploy/apps/*/serve.yaml composed,
it stays in step with them through `make render`, and every Ray container uses token auth."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from driftloop_workflows.rayservice import (
    POD_HOST,
    RAY_SERVICE,
    ServeConfigError,
    compose,
    load_serve_configs,
)
from driftloop_workflows.render import HEADER, OUT, render

ROOT = Path(__file__).resolve().parents[2]
BASE = ROOT / "deploy" / "k8s" / "base"
PATCH = BASE / "serving" / "serve-config.yaml"
TOKEN_SECRET = "driftloop-ray-token"


def _serve_yamls(root: Path) -> dict[str, dict[str, Any]]:
    """Each model's serve.yaml, read here without the module under test."""
    return {
        p.parent.name: yaml.safe_load(p.read_text())
        for p in sorted((root / "deploy" / "apps").glob("*/serve.yaml"))
    }


def _rendered_config(patch: Path) -> dict[str, Any]:
    document = yaml.safe_load(patch.read_text())
    assert (document["apiVersion"], document["kind"]) == ("ray.io/v1", "RayService")
    assert document["metadata"]["name"] == RAY_SERVICE
    config: dict[str, Any] = yaml.safe_load(document["spec"]["serveConfigV2"])
    return config


def test_serve_config_v2_is_every_apps_serve_yaml_composed():
    from ray.serve.schema import ServeDeploySchema

    apps = _serve_yamls(ROOT)
    assert apps, "no deploy/apps/*/serve.yaml"
    config = _rendered_config(PATCH)
    ServeDeploySchema.model_validate(config)
    expected = [a for model in sorted(apps) for a in apps[model]["applications"]]
    assert config["applications"] == expected
    # The proxy listens on the pod's address, on the port serve.yaml names.
    for document in apps.values():
        assert config["http_options"] == {**document["http_options"], "host": POD_HOST}


def test_the_rayservice_takes_its_serve_config_from_the_rendered_patch():
    kustomization = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    assert {"path": "serving/serve-config.yaml"} in kustomization["patches"]
    assert "serving/rayservice.yaml" in kustomization["resources"]
    [service] = [
        d for d in yaml.safe_load_all((BASE / "serving" / "rayservice.yaml").read_text()) if d
    ]
    assert service["metadata"]["name"] == RAY_SERVICE
    assert "serveConfigV2" not in service["spec"], "serveConfigV2 is rendered, never hand-kept"


def test_a_promotion_that_edits_serve_yaml_and_re_renders_keeps_them_in_step(tmp_path):
    shutil.copytree(ROOT / "deploy" / "apps", tmp_path / "deploy" / "apps")
    assert render(tmp_path, check=False)  # a fresh root: everything is written
    assert render(tmp_path, check=True) == []
    serve_yaml = tmp_path / "deploy" / "apps" / "fraud" / "serve.yaml"
    digest = "ab" * 32
    edited = (
        serve_yaml.read_text()
        .replace("model_uri: null", f"model_uri: models:/fraud/sha256-{digest[:16]}")
        .replace("model_digest: null", f"model_digest: {digest}")
    )
    assert edited != serve_yaml.read_text()
    serve_yaml.write_text(edited)
    patch = tmp_path / OUT / "../serving/serve-config.yaml"
    assert render(tmp_path, check=True) == [str(OUT / "../serving/serve-config.yaml")]
    render(tmp_path, check=False)
    assert render(tmp_path, check=True) == []
    [app] = _rendered_config(patch)["applications"]
    user_config = app["deployments"][0]["user_config"]
    assert user_config["model_uri"] == f"models:/fraud/sha256-{digest[:16]}"
    assert user_config["model_digest"] == digest
    assert patch.read_text().startswith(HEADER)


def test_a_second_model_is_served_beside_the_first():
    apps = _serve_yamls(ROOT)
    second = yaml.safe_load(yaml.safe_dump(apps["fraud"]))
    second["applications"][0].update(name="fraud-lite", route_prefix="/fraud-lite")
    composed = compose({**apps, "fraud-lite": second})
    assert [a["name"] for a in composed["applications"]] == ["fraud", "fraud-lite"]


def test_configs_that_cannot_be_composed_are_refused_by_reason():
    fraud = _serve_yamls(ROOT)["fraud"]

    def variant(**app: Any) -> dict[str, Any]:
        copy: dict[str, Any] = yaml.safe_load(yaml.safe_dump(fraud))
        copy["applications"][0].update(app)
        return copy

    with pytest.raises(ServeConfigError, match="application 'fraud' twice"):
        compose({"fraud": fraud, "other": variant(route_prefix="/other")})
    with pytest.raises(ServeConfigError, match="route '/fraud' twice"):
        compose({"fraud": fraud, "other": variant(name="other")})
    other = variant(name="other", route_prefix="/other")
    other["http_options"] = {"host": "127.0.0.1", "port": 8001}
    with pytest.raises(ServeConfigError, match="http_options differ"):
        compose({"fraud": fraud, "other": other})
    broken = variant(name="other", route_prefix="/other")
    broken["applications"][0]["deployments"][0]["max_ongoing_requests"] = -1
    with pytest.raises(ServeConfigError, match=r"other/serve\.yaml"):
        compose({"fraud": fraud, "other": broken})
    with pytest.raises(ServeConfigError, match="no deploy/apps"):
        compose({})


def test_load_serve_configs_reads_every_model(tmp_path):
    for model in ("a", "b"):
        (tmp_path / "deploy" / "apps" / model).mkdir(parents=True)
        serve_yaml = tmp_path / "deploy" / "apps" / model / "serve.yaml"
        serve_yaml.write_text(f"applications: [{{name: {model}}}]\n")
    assert sorted(load_serve_configs(tmp_path)) == ["a", "b"]
    (tmp_path / "deploy" / "apps" / "a" / "serve.yaml").write_text("- a list\n")
    with pytest.raises(ServeConfigError, match="not a mapping"):
        load_serve_configs(tmp_path)


def _ray_containers(document: dict[str, Any]) -> list[dict[str, Any]]:
    spec = document["spec"]
    cluster = spec["rayClusterConfig"] if document["kind"] == "RayService" else spec
    groups = [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
    return [c for g in groups for c in g["template"]["spec"]["containers"]]


@pytest.mark.parametrize("path", ["serving/rayservice.yaml", "training/raycluster.yaml"])
def test_every_ray_container_uses_token_auth_from_a_secret(path):
    [document] = [d for d in yaml.safe_load_all((BASE / path).read_text()) if d]
    cluster = document["spec"].get("rayClusterConfig", document["spec"])
    assert cluster["authOptions"] == {"mode": "token", "secretName": TOKEN_SECRET}
    containers = _ray_containers(document)
    assert containers
    for container in containers:
        env = {e["name"]: e for e in container["env"]}
        assert env["RAY_AUTH_MODE"]["value"] == "token"
        assert env["RAY_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"] == {
            "name": TOKEN_SECRET,
            "key": "auth_token",
        }
        assert "value" not in env["RAY_AUTH_TOKEN"]


def test_every_serve_container_needs_the_api_key_secret_and_auth_is_not_off():
    """Secure by default on Kubernetes too: without the driftloop-serve Secret no Serve pod
    starts (it holds DRIFTLOOP_SERVE_API_KEY, or DRIFTLOOP_SERVE_AUTH=off to switch the key
    off deliberately), and nothing in git switches it off or carries a key."""
    [document] = [
        d for d in yaml.safe_load_all((BASE / "serving/rayservice.yaml").read_text()) if d
    ]
    for container in _ray_containers(document):
        refs = [s["secretRef"] for s in container["envFrom"] if "secretRef" in s]
        assert {"name": "driftloop-serve"} in refs, container["name"]
    config = yaml.safe_load((BASE / "config/env.yaml").read_text())["data"]
    assert not {"DRIFTLOOP_SERVE_AUTH", "DRIFTLOOP_SERVE_API_KEY"} & set(config)
    for app in _serve_yamls(ROOT).values():
        for application in app["applications"]:
            assert not {"auth", "api_key"} & set(application.get("args") or {})


def test_rendering_the_serve_config_alone_touches_nothing_else(tmp_path):
    """What a promotion runs: only the serveConfigV2 patch is compared and written; the
    other rendered files are neither rewritten nor removed, stale or not."""
    shutil.copytree(ROOT / "deploy" / "apps", tmp_path / "deploy" / "apps")
    render(tmp_path, check=False)
    template = tmp_path / OUT / "retrain-template.yaml"
    template.write_text(template.read_text() + "# edited by hand\n")
    (tmp_path / OUT / "stray.yaml").write_text("kind: Stray\n")
    serve_yaml = tmp_path / "deploy" / "apps" / "fraud" / "serve.yaml"
    serve_yaml.write_text(
        serve_yaml.read_text().replace("model_uri: null", "model_uri: models:/fraud/v9")
    )
    patch = str(OUT / "../serving/serve-config.yaml")
    assert render(tmp_path, check=True, serve_config_only=True) == [patch]
    assert render(tmp_path, check=False, serve_config_only=True) == [patch]
    assert render(tmp_path, check=True, serve_config_only=True) == []
    [app] = _rendered_config(tmp_path / patch)["applications"]
    assert app["deployments"][0]["user_config"]["model_uri"] == "models:/fraud/v9"
    assert template.read_text().endswith("# edited by hand\n")
    assert (tmp_path / OUT / "stray.yaml").is_file()
    # ...which the full render, and `make check-render`, still report
    assert sorted(render(tmp_path, check=True)) == sorted(
        [str(OUT / "retrain-template.yaml"), f"{OUT / 'stray.yaml'} (no longer rendered)"]
    )
