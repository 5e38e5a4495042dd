"""The RayService's ``serveConfigV2``, rendered from every ``deploy/apps/<model>/serve.yaml``.

``deploy/k8s/base/serving/rayservice.yaml`` holds the Ray cluster (head, worker groups,
token auth) and is edited by hand; the one field a promotion changes, ``serveConfigV2``, is
rendered here into ``deploy/k8s/base/serving/serve-config.yaml``, a kustomize patch of that
RayService. ``make render`` writes it and ``make check-render`` fails when it is stale, so a
promotion that edits serve.yaml and re-renders commits both in one change.

Ray's REST API, which KubeRay calls with ``serveConfigV2``, replaces the whole set of
applications, so every model's file is composed into one config (the rules the sync service
applies on one machine): each file must validate against Ray's ``ServeDeploySchema``, the
files must agree on ``http_options``, and no application name or route may appear twice.

The serve.yaml files bind Serve's proxy to loopback, which is right on one machine; in a
pod the proxy must listen on the pod's address for KubeRay's serve Service to reach it, so
the rendered config binds ``0.0.0.0``. That is safe only because every Service in front of
it is ClusterIP (a test checks it): nothing outside the cluster reaches port 8000.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from driftloop.deployments import ServeConfigError as ServeConfigError
from driftloop.deployments import compose_serve_configs

RAY_SERVICE = "driftloop-serve"
"""``metadata.name`` of the RayService in ``deploy/k8s/base/serving/rayservice.yaml``."""

PATCH = "../serving/serve-config.yaml"
"""The rendered patch, relative to ``render.OUT`` (``deploy/k8s/base/workflows``)."""

POD_HOST = "0.0.0.0"  # noqa: S104 - the pod's own address; see the module docstring
"""``http_options.host`` inside a Ray pod."""

SOURCE_NOTE = (
    "# serveConfigV2 of the RayService, composed from deploy/apps/*/serve.yaml (the cluster\n"
    "# itself is rayservice.yaml beside this file). Change serve.yaml, then `make render`.\n"
)


compose = compose_serve_configs
"""The composition rules the sync service applies on one machine (one implementation)."""


def load_serve_configs(root: Path) -> dict[str, dict[str, Any]]:
    """``<model>`` → the parsed ``deploy/apps/<model>/serve.yaml``, for every model."""
    import yaml

    configs: dict[str, dict[str, Any]] = {}
    for path in sorted((root / "deploy" / "apps").glob("*/serve.yaml")):
        document = yaml.safe_load(path.read_text())
        if not isinstance(document, dict):
            raise ServeConfigError(f"{path.parent.name}/serve.yaml: not a mapping")
        configs[path.parent.name] = document
    return configs


def in_pod(composed: dict[str, Any]) -> dict[str, Any]:
    """The composed config with Serve's proxy bound to the pod's address."""
    return {**composed, "http_options": {**composed["http_options"], "host": POD_HOST}}


class _Block(str):
    """A string dumped as a YAML literal block, so the config reads as it does in serve.yaml."""

    __slots__ = ()


def _dump(document: dict[str, Any]) -> str:
    import yaml

    class Dumper(yaml.SafeDumper):
        pass

    def block(dumper: yaml.SafeDumper, text: _Block) -> yaml.ScalarNode:
        return dumper.represent_scalar("tag:yaml.org,2002:str", str(text), style="|")

    Dumper.add_representer(_Block, block)
    return yaml.dump(document, Dumper=Dumper, sort_keys=False, width=100)


def serve_config_v2(root: Path) -> str:
    """The YAML text KubeRay hands to Ray Serve: every app, proxy on the pod's address."""
    import yaml

    config = in_pod(compose(load_serve_configs(root)))
    return yaml.safe_dump(config, sort_keys=False, width=100)


def serve_config_patch(root: Path, name: str = RAY_SERVICE) -> str:
    """The kustomize patch that sets the RayService's ``serveConfigV2`` (without a header)."""
    patch = {
        "apiVersion": "ray.io/v1",
        "kind": "RayService",
        "metadata": {"name": name},
        "spec": {"serveConfigV2": _Block(serve_config_v2(root))},
    }
    return SOURCE_NOTE + _dump(patch)
