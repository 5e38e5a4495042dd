"""The manifests under deploy/k8s and deploy/argocd, read as files: nothing reachable from
outside the cluster, no replicas in git for what an autoscaler owns, Argo CD syncing every
overlay by itself, topics and metrics that match the code, no secret material."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml
from driftloop_workflows.k8s import dashboard_problems, dashboards

from driftloop.settings import TOPICS, Settings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
BASE = K8S / "base"
ARGOCD = ROOT / "deploy" / "argocd"
OVERLAYS = sorted(p.parent for p in (K8S / "overlays").glob("*/kustomization.yaml"))


def _docs(directory: Path) -> list[tuple[Path, Any]]:
    """Every YAML document under a directory, with its file (patch lists included)."""
    return [
        (path, doc)
        for path in sorted(directory.rglob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc is not None
    ]


def _of_kind(kind: str) -> list[dict[str, Any]]:
    """The base's objects of a kind: its resources, not its patches."""
    resources = yaml.safe_load((BASE / "kustomization.yaml").read_text())["resources"]
    return [
        d
        for path in resources
        for d in yaml.safe_load_all((BASE / path).read_text())
        if isinstance(d, dict) and d.get("kind") == kind
    ]


def _everywhere(kind: str) -> list[dict[str, Any]]:
    """Every document of a kind under deploy/k8s, patches included."""
    return [d for _, d in _docs(K8S) if isinstance(d, dict) and d.get("kind") == kind]


def _walk(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """(path, value) of every scalar in a document."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _walk(value, f"{path}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _walk(value, f"{path}/{index}")
    else:
        yield path, node


def exposed(document: Any) -> list[str]:
    """Where a document (or a patch) would put a port outside the cluster."""
    found = [p for p, v in _walk(document) if v in {"NodePort", "LoadBalancer"}]
    if isinstance(document, dict) and document.get("kind") == "Kafka":
        listeners = document["spec"]["kafka"].get("listeners") or []
        found += [f"listener {x['name']}" for x in listeners if x["type"] != "internal"]
    if isinstance(document, dict) and document.get("kind") in {"Ingress", "Route", "Gateway"}:
        found.append(document["kind"])
    return found


def autoscaled_replicas(document: Any) -> list[str]:
    """Replica counts a document (or a JSON patch) sets where an autoscaler owns them."""
    if isinstance(document, list):  # JSON 6902 operations
        return [
            op["path"]
            for op in document
            if re.search(r"/workerGroupSpecs/[^/]+/replicas$", str(op.get("path")))
        ]
    if not isinstance(document, dict) or document.get("kind") not in {"RayService", "RayCluster"}:
        return []
    spec: dict[str, Any] = document.get("spec") or {}
    cluster: dict[str, Any] = spec
    if document["kind"] == "RayService":
        cluster = spec.get("rayClusterConfig") or {}
    return [
        f"{document['kind']}/{document['metadata']['name']} worker group {g.get('groupName')}"
        for g in cluster.get("workerGroupSpecs") or []
        if "replicas" in g
    ]


def test_the_checks_below_catch_what_they_look_for():
    service = {"kind": "Service", "spec": {"type": "NodePort"}}
    assert exposed(service) == ["/spec/type"]
    assert exposed([{"op": "replace", "path": "/spec/type", "value": "LoadBalancer"}])
    ray = {
        "kind": "RayCluster",
        "metadata": {"name": "x"},
        "spec": {"workerGroupSpecs": [{"groupName": "cpu", "replicas": 2}]},
    }
    assert autoscaled_replicas(ray) == ["RayCluster/x worker group cpu"]
    assert autoscaled_replicas([{"op": "add", "path": "/spec/workerGroupSpecs/0/replicas"}])


def test_nothing_is_exposed_outside_the_cluster():
    for path, document in _docs(K8S):
        assert exposed(document) == [], f"{path.relative_to(ROOT)}"
    services = _of_kind("Service")
    assert services
    for service in services:
        assert service["spec"]["type"] == "ClusterIP", service["metadata"]["name"]
    [ray_service] = _of_kind("RayService")
    assert ray_service["spec"]["serveService"]["spec"]["type"] == "ClusterIP"
    assert ray_service["spec"]["rayClusterConfig"]["headGroupSpec"]["serviceType"] == "ClusterIP"
    for cluster in _of_kind("RayCluster"):
        assert cluster["spec"]["headGroupSpec"]["serviceType"] == "ClusterIP"


def test_git_holds_no_replicas_for_what_an_autoscaler_owns():
    for path, document in _docs(K8S):
        assert autoscaled_replicas(document) == [], f"{path.relative_to(ROOT)}"
    # Worker groups are bounded instead, and the Ray autoscaler is on.
    for cluster in [s["spec"]["rayClusterConfig"] for s in _of_kind("RayService")] + [
        c["spec"] for c in _of_kind("RayCluster")
    ]:
        assert cluster["enableInTreeAutoscaling"] is True
        for group in cluster["workerGroupSpecs"]:
            assert 0 <= group["minReplicas"] <= group["maxReplicas"]
    # Serve's deployments: autoscaling_config, never num_replicas beside it.
    for serve_yaml in (ROOT / "deploy" / "apps").glob("*/serve.yaml"):
        for app in yaml.safe_load(serve_yaml.read_text())["applications"]:
            for deployment in app.get("deployments") or []:
                if "autoscaling_config" in deployment:
                    assert "num_replicas" not in deployment, f"{serve_yaml}: {deployment['name']}"
    # A HorizontalPodAutoscaler's target keeps no replica count in git.
    scaled = {h["spec"]["scaleTargetRef"]["name"] for h in _everywhere("HorizontalPodAutoscaler")}
    for deployment in _everywhere("Deployment"):
        if deployment["metadata"]["name"] in scaled:
            assert "replicas" not in deployment.get("spec", {}), deployment["metadata"]["name"]


def test_singletons_stay_single_and_are_not_rolled_two_at_once():
    for name in ("driftloop-stream", "driftloop-monitor", "driftloop-trigger"):
        [deployment] = [d for d in _of_kind("Deployment") if d["metadata"]["name"] == name]
        assert deployment["spec"]["replicas"] == 1
        assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    for _, document in _docs(K8S / "overlays"):
        if isinstance(document, dict) and document.get("kind") == "Deployment":
            name = document["metadata"]["name"]
            assert name == "driftloop-feature-server" or "replicas" not in document["spec"]


def _argocd_applications() -> list[tuple[str, dict[str, Any]]]:
    apps: list[tuple[str, dict[str, Any]]] = []
    for _, document in _docs(ARGOCD):
        if document["kind"] == "Application":
            apps.append((document["metadata"]["name"], document["spec"]))
        elif document["kind"] == "ApplicationSet":
            apps.append((document["metadata"]["name"], document["spec"]["template"]["spec"]))
    return apps


def test_argocd_syncs_every_overlay_by_itself():
    apps = _argocd_applications()
    assert {name for name, _ in apps} >= {"driftloop-root", "driftloop"}
    for name, spec in apps:
        automated = spec["syncPolicy"]["automated"]
        assert automated["prune"] is True and automated["selfHeal"] is True, name
    [appset] = [d for _, d in _docs(ARGOCD) if d["kind"] == "ApplicationSet"]
    [generator] = appset["spec"]["generators"]
    elements = {e["env"]: e for e in generator["list"]["elements"]}
    assert set(elements) == {p.name for p in OVERLAYS}
    template = appset["spec"]["template"]["spec"]
    assert template["source"]["path"] == "deploy/k8s/overlays/{{.env}}"
    for overlay in OVERLAYS:
        kustomization = yaml.safe_load((overlay / "kustomization.yaml").read_text())
        assert elements[overlay.name]["namespace"] == kustomization["namespace"]
    [root] = [spec for name, spec in apps if name == "driftloop-root"]
    assert (ROOT / root["source"]["path"] / "environments.yaml").is_file()


def test_argocd_leaves_autoscaled_replicas_to_the_autoscalers():
    [appset] = [d for _, d in _docs(ARGOCD) if d["kind"] == "ApplicationSet"]
    template = appset["spec"]["template"]["spec"]
    assert "RespectIgnoreDifferences=true" in template["syncPolicy"]["syncOptions"]
    ignored = {
        (i["kind"], i["name"]): i["jqPathExpressions"] for i in template["ignoreDifferences"]
    }
    [service] = _of_kind("RayService")
    [cluster] = _of_kind("RayCluster")
    assert ignored[("RayService", service["metadata"]["name"])] == [
        ".spec.rayClusterConfig.workerGroupSpecs[].replicas"
    ]
    assert ignored[("RayCluster", cluster["metadata"]["name"])] == [
        ".spec.workerGroupSpecs[].replicas"
    ]


def test_kafka_topics_are_the_topics_the_services_use():
    settings = Settings()
    [kafka] = _of_kind("Kafka")
    topics = _of_kind("KafkaTopic")
    assert {t["spec"]["topicName"] for t in topics} == {settings.topic(t) for t in TOPICS}
    for topic in topics:
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
        assert topic["spec"]["partitions"] == settings.topic_partitions
        assert int(topic["spec"]["config"]["retention.ms"]) == settings.topic_retention_ms
    [plain] = [x for x in kafka["spec"]["kafka"]["listeners"] if not x["tls"]]
    [env] = [c for c in _of_kind("ConfigMap") if c["metadata"]["name"] == "driftloop-env"]
    bootstrap = f"{kafka['metadata']['name']}-kafka-bootstrap:{plain['port']}"
    assert env["data"]["DRIFTLOOP_KAFKA_BOOTSTRAP_SERVERS"] == bootstrap
    for pool in _of_kind("KafkaNodePool"):
        assert pool["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]


def test_every_rendered_and_listed_file_is_in_the_base():
    kustomization = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    resources = set(kustomization["resources"])
    rendered = {f"workflows/{p.name}" for p in (BASE / "workflows").glob("*.yaml")}
    assert rendered, "no rendered workflow manifests"
    assert rendered <= resources, f"add to base/kustomization.yaml: {sorted(rendered - resources)}"
    listed = resources | {p["path"] for p in kustomization["patches"]}
    for path in listed:
        assert (BASE / path).is_file(), path


SECRETISH = re.compile(r"TOKEN|PASSWORD|SECRET|API_KEY|ACCESS_KEY|CREDENTIAL", re.IGNORECASE)


def test_git_holds_no_secret_material():
    for path, document in _docs(ROOT / "deploy"):
        if not isinstance(document, dict):
            continue
        where = path.relative_to(ROOT)
        if document.get("kind") == "Secret":
            assert not document.get("data") and not document.get("stringData"), where
        if document.get("kind") == "ConfigMap":
            assert not [k for k in document.get("data") or {} if SECRETISH.search(k)], where
        for env in _env_entries(document):
            if SECRETISH.search(env["name"]):
                assert "value" not in env, f"{where}: {env['name']} must come from a Secret"


def _env_entries(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "env" and isinstance(value, list):
                yield from (e for e in value if isinstance(e, dict) and "name" in e)
            else:
                yield from _env_entries(value)
    elif isinstance(node, list):
        for value in node:
            yield from _env_entries(value)


def _exported_metric_names() -> set[str]:
    """Every series name the services' and serving app's registries can expose."""
    from driftloop_monitor._metrics import MonitorMetrics
    from driftloop_serving._metrics import ServingMetrics
    from driftloop_stream._metrics import StreamMetrics
    from prometheus_client.metrics_core import Metric

    from driftloop.kafka._metrics import consumer_metrics

    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"]}

    def names(families: Iterable[Metric], prefix: str = "") -> set[str]:
        return {
            f"{prefix}{m.name}{suffix}" for m in families for suffix in suffixes.get(m.type, [""])
        }

    consumer = consumer_metrics()
    counters = (consumer.received, consumer.handled, consumer.dead_lettered)
    return (
        names(MonitorMetrics.create().registry.collect())
        | names(StreamMetrics.create().registry.collect())
        # Ray's exporter names the serving app's metrics with its own prefix.
        | names(ServingMetrics.create().registry.collect(), prefix="ray_")
        | names(m for counter in counters for m in counter.collect())
    )


METRIC = re.compile(r"(?<![\w:])(?:ray_)?driftloop_[a-z0-9_]+")


def test_alerts_and_dashboards_query_metrics_the_code_exports():
    exported = _exported_metric_names()
    queries: list[str] = []
    for rule in _of_kind("PrometheusRule"):
        for group in rule["spec"]["groups"]:
            for entry in group["rules"]:
                queries.append(entry["expr"])
                if "alert" in entry:
                    assert entry["labels"]["severity"] in {"warning", "critical"}, entry["alert"]
                    assert entry["annotations"]["summary"], entry["alert"]
    for board in dashboards(ROOT):
        for panel in json.loads(board.read_text())["panels"]:
            queries += [t["expr"] for t in panel.get("targets") or []]
    used = {name for query in queries for name in METRIC.findall(query)}
    assert used, "no driftloop metric queried"
    assert used - exported == set(), "queried but exported by nothing"


def test_dashboards_parse_and_are_shipped(tmp_path):
    boards = dashboards(ROOT)
    assert boards
    for board in boards:
        assert dashboard_problems(board) == []
    kustomization = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    shipped = {f for g in kustomization["configMapGenerator"] for f in g.get("files", [])}
    assert {b.relative_to(BASE).as_posix() for b in boards} <= shipped
    broken = tmp_path / "broken.json"
    broken.write_text('{"uid": "x", "title": "x", "panels": [')
    assert dashboard_problems(broken)[0].startswith("broken.json: not JSON")
    empty_query = tmp_path / "empty.json"
    empty_query.write_text('{"uid": "x", "title": "x", "panels": [{"id": 1, "targets": [{}]}]}')
    assert "without a query" in dashboard_problems(empty_query)[0]
