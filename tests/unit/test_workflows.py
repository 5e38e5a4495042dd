"""The rendered Argo manifests: fresh, faithful to Hera's models, and runnable locally
only within the features the local executor implements."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from driftloop_trigger import load_policy
from driftloop_workflows.events import COMPONENT, load_rules, retrain_sensor
from driftloop_workflows.render import OUT, render
from driftloop_workflows.schedule import load_schedule
from hera.events import models as events
from hera.workflows import models as workflows

from driftloop.runs import UnsupportedFeature, load_template
from driftloop.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
RENDERED = ROOT / OUT
EVENTS = ROOT / COMPONENT
APPS = ROOT / "deploy" / "apps"


def test_committed_manifests_are_fresh():
    assert render(ROOT, check=True) == []


ROUND_TRIP = [
    *sorted(RENDERED.glob("*.yaml")),
    EVENTS / "drift-eventsource.yaml",
    EVENTS / "retrain-sensor.yaml",
]


@pytest.mark.parametrize("path", ROUND_TRIP, ids=lambda p: p.name)
def test_each_manifest_round_trips_through_heras_models(path):
    document = yaml.safe_load(path.read_text())
    kind = document["kind"]
    if kind in {"EventSource", "Sensor"}:
        body = {k: v for k, v in document.items() if k not in {"apiVersion", "kind"}}
        model = getattr(events, kind).parse_obj(body)
        assert model.dict(exclude_none=True, by_alias=True) == body
    else:
        model = getattr(workflows, kind).parse_obj(document)
        assert model.dict(exclude_none=True, by_alias=True) == document


def test_the_retrain_template_is_the_dag_the_issue_asks_for():
    template = load_template(RENDERED / "retrain-template.yaml")
    assert [t.name for t in template.dag()] == [
        "build-dataset", "train", "evaluate", "register", "promote",
    ]  # fmt: skip
    assert template.defaults() == {
        "model": None, "reason": "manual", "trigger-event-id": "", "window": "7d",
        "window-end": "", "change-point": "",
    }  # fmt: skip
    [built] = [t for t in template.dag() if t.name == "build-dataset"]
    given = {p.name: p.value for p in built.arguments.parameters}
    assert given["change_point"] == "{{workflow.parameters.change-point}}"
    assert template.spec.synchronization is not None
    assert "workflow.parameters.model" in template.spec.synchronization.mutex.name
    retried = {t.name for t in template.spec.templates if t.retryStrategy}
    assert {"build-dataset", "train", "evaluate", "register"} <= retried
    assert "promote" not in retried


def _variant(tmp_path: Path, change) -> Path:
    document = yaml.safe_load((RENDERED / "retrain-template.yaml").read_text())
    change(document)
    path = tmp_path / "template.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def test_features_the_local_executor_lacks_are_refused_by_name(tmp_path):
    def add_volume(d):
        d["spec"]["volumes"] = [{"name": "scratch", "emptyDir": {}}]

    with pytest.raises(UnsupportedFeature, match=r"spec\.volumes"):
        load_template(_variant(tmp_path, add_volume))

    def or_depends(d):
        d["spec"]["templates"][0]["dag"]["tasks"][1]["depends"] = "build-dataset || evaluate"

    with pytest.raises(UnsupportedFeature, match="only task names joined by &&"):
        load_template(_variant(tmp_path, or_depends))

    def container(d):
        d["spec"]["templates"][1]["container"] = {"image": "busybox"}

    with pytest.raises(UnsupportedFeature, match="container"):
        load_template(_variant(tmp_path, container))


# -- Argo Events: opt-in, instead of the trigger ---------------------------------------------
def _kustomization(directory: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((directory / "kustomization.yaml").read_text())
    return loaded


def _sensor() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((EVENTS / "retrain-sensor.yaml").read_text())
    return loaded


def test_argo_events_is_an_opt_in_component_that_replaces_the_trigger():
    base = _kustomization(ROOT / "deploy" / "k8s" / "base")
    kinds = {
        document.get("kind")
        for r in base["resources"]
        for document in yaml.safe_load_all((ROOT / "deploy" / "k8s" / "base" / r).read_text())
        if document
    }
    assert "Deployment" in kinds
    assert not kinds & {"Sensor", "EventSource", "EventBus"}  # the trigger submits by default
    component = _kustomization(EVENTS)
    assert component["kind"] == "Component"
    assert {"drift-eventsource.yaml", "retrain-sensor.yaml"} <= set(component["resources"])
    for overlay in (ROOT / "deploy" / "k8s" / "overlays").glob("*/kustomization.yaml"):
        assert not yaml.safe_load(overlay.read_text()).get("components"), overlay
    [deleted] = [p["patch"] for p in component["patches"] if "patch" in p]
    assert yaml.safe_load(deleted) == {
        "$patch": "delete",
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "driftloop-trigger"},
    }


def test_the_sensor_reads_the_monitors_topic_and_submits_into_its_own_namespace():
    source = yaml.safe_load((EVENTS / "drift-eventsource.yaml").read_text())
    assert {k["topic"] for k in source["spec"]["kafka"].values()} == {
        Settings().topic("drift-events")
    }
    for trigger in _sensor()["spec"]["triggers"]:
        assert trigger["atLeastOnce"] is True
        workflow = yaml.safe_load(trigger["template"]["argoWorkflow"]["source"]["inline"])
        assert "namespace" not in workflow["metadata"]


def test_the_sensor_reads_every_trigger_policy_as_the_trigger_does():
    rules = load_rules(APPS)
    assert rules
    for rule in rules:
        policy = load_policy(APPS / rule.model / "trigger.yaml")
        assert (rule.enabled, rule.data_drift, rule.min_drifted_columns) == (
            policy.enabled,
            policy.data_drift.enabled,
            policy.data_drift.min_drifted_columns,
        )
        assert (rule.performance, rule.min_drop, rule.min_degraded_metrics) == (
            policy.performance.enabled,
            policy.performance.min_drop,
            policy.performance.min_degraded_metrics,
        )
        assert (rule.window, rule.window_end) == (policy.window, policy.window_end)


def test_the_sensor_filters_by_each_policys_severity():
    [dependency] = _sensor()["spec"]["dependencies"]
    filters = dependency["filters"]
    assert filters["exprLogicalOperator"] == "or"
    exprs = [e["expr"] for e in filters["exprs"]]
    for rule in load_rules(APPS):
        drift = f'model == "{rule.model}" && kind == "data_drift"'
        assert f"{drift} && drifted >= {rule.min_drifted_columns}" in exprs
    paths = {f["path"] for e in filters["exprs"] for f in e["fields"]}
    assert "body.metrics.drifted_columns" in paths  # what the monitor publishes


def _exprs(apps: Path) -> list[str]:
    sensor = retrain_sensor(load_rules(apps)).dict(exclude_none=True, by_alias=True)
    [dependency] = sensor["spec"]["dependencies"]
    return [e["expr"] for e in dependency["filters"]["exprs"]]


def test_the_sensor_filters_express_floors_and_disabled_policies(tmp_path):
    [never] = _exprs(tmp_path)  # no policy: no run
    assert "no trigger.yaml" in never
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "trigger.yaml").write_text(
        "model: m\ndata_drift: {enabled: false}\n"
        "performance: {min_drop: {roc_auc: 0.05, recall: 0.2}, min_degraded_metrics: 1}\n"
    )
    assert _exprs(tmp_path) == [
        'model == "m" && kind == "performance_degraded" && drop0 >= 0.2',
        'model == "m" && kind == "performance_degraded" && drop0 >= 0.05',
    ]


def test_the_sensor_names_runs_per_window_and_passes_the_window():
    [trigger] = _sensor()["spec"]["triggers"]
    parameters = trigger["template"]["argoWorkflow"]["parameters"]
    by_dest = {p["dest"]: p["src"]["dataTemplate"] for p in parameters}
    name = by_dest["metadata.name"]
    for key in ("model_name", "model_version", "window.start", "window.end", "sha256sum"):
        assert key in name
    assert "event_id" not in name  # a burst of events about one window: one name
    workflow = yaml.safe_load(trigger["template"]["argoWorkflow"]["source"]["inline"])
    names = [p["name"] for p in workflow["spec"]["arguments"]["parameters"]]
    assert names == ["model", "reason", "trigger-event-id", "window", "window-end", "change-point"]
    sent = {names[int(d.split(".")[3])]: t for d, t in by_dest.items() if d != "metadata.name"}
    for rule in load_rules(APPS):
        assert f'eq .Input.body.model_name "{rule.model}" }}}}{rule.window}' in sent["window"]
        if rule.window_end == "event":
            assert "{{ .Input.body.window.end }}" in sent["window-end"]
    assert sent["trigger-event-id"] == "{{ .Input.body.event_id }}"
    # the monitor's change point, or "" for an event without one (never "<no value>")
    assert sent["change-point"] == "{{ with .Input.body.change_point }}{{ . }}{{ end }}"


def test_the_promote_step_reads_how_to_declare_a_version_from_retrain_yaml(tmp_path):
    from driftloop.deployments import promote_as

    settings = Settings(deploy_dir=tmp_path, state_dir=tmp_path / "state")
    assert promote_as(settings, "fraud") == "serving"  # no retrain.yaml
    (tmp_path / "apps" / "fraud").mkdir(parents=True)
    policy = tmp_path / "apps" / "fraud" / "retrain.yaml"
    shipped = (ROOT / "deploy" / "apps" / "fraud" / "retrain.yaml").read_text()
    policy.write_text(shipped)
    assert promote_as(settings, "fraud") == "serving"
    load_schedule(policy)  # the CronWorkflow's reader takes the same file
    policy.write_text(shipped.replace("promote_as: serving", "promote_as: shadow"))
    assert promote_as(settings, "fraud") == "shadow"
    assert load_schedule(policy).promote_as == "shadow"
    policy.write_text(shipped.replace("promote_as: serving", "promote_as: canary"))
    with pytest.raises(ValueError, match="'serving' or 'shadow', not 'canary'"):
        promote_as(settings, "fraud")
