"""Argo Events — an opt-in alternative to the trigger service, never beside it.

A Kafka EventSource on ``drift-events`` and a Sensor that submits ``driftloop-retrain``
for each drift or performance event worth a run, at least once. They render into the
kustomize *component* ``deploy/k8s/components/argo-events``, not into ``base``: an
overlay that lists the component runs Argo Events INSTEAD of the trigger service (the
component deletes the trigger's Deployment). Both at once would double every decision,
and only the trigger applies cooldown, daily budget and one-active-run-per-model.

What the Sensor does apply, from each model's ``deploy/apps/<model>/trigger.yaml``:

* severity, as data filters (``exprs``, OR-ed): a data drift event needs the monitor's
  ``metrics.drifted_columns`` ≥ ``min_drifted_columns``; a performance event needs
  ``min_degraded_metrics`` of the ``min_drop`` floors (any, with no floors). A model
  without a policy, or with the policy or a kind disabled, starts no run. Per-column
  floors and ignored columns are not expressible; a unit test keeps them no stricter
  than the monitor's own, so the monitor's count is the trigger's.
* one run per (model, model version, window): the Workflow is named
  ``retrain-<model>-<hash of version and window>``, so a burst of events about one
  window — redeliveries, or a drift and a performance event — meets Argo's "already
  exists" instead of a second run (the trigger's window dedup, done by the API server).
* the run's parameters: ``window`` and ``window-end`` as the trigger passes them.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from hera.events import models as m
from hera.events.models.io.k8s.apimachinery.pkg.apis.meta.v1 import ObjectMeta

from driftloop_workflows.retrain import NAME, PARAMETERS

SOURCE = "driftloop-kafka"
EVENT = "drift"
API_VERSION = "argoproj.io/v1alpha1"
COMPONENT = Path("deploy/k8s/components/argo-events")
"""Where the EventSource and the Sensor render (beside the component's kustomization)."""


@dataclass(frozen=True)
class ModelRule:
    """What the Sensor needs of one ``trigger.yaml`` (its defaults are the trigger's)."""

    model: str
    enabled: bool = True
    data_drift: bool = True
    min_drifted_columns: int = 1
    performance: bool = True
    min_drop: dict[str, float] = field(default_factory=dict)
    min_degraded_metrics: int = 1
    window: str = "7d"
    window_end: Literal["event", "now"] = "event"


def load_rules(apps: Path) -> list[ModelRule]:
    """Every ``<apps>/<model>/trigger.yaml``, read for the Sensor (the trigger service
    validates these files strictly; here only the fields the Sensor uses are read)."""
    rules = []
    for path in sorted(apps.glob("*/trigger.yaml")):
        raw: dict[str, Any] = yaml.safe_load(path.read_text()) or {}
        drift: dict[str, Any] = raw.get("data_drift") or {}
        perf: dict[str, Any] = raw.get("performance") or {}
        rules.append(
            ModelRule(
                model=str(raw.get("model", path.parent.name)),
                enabled=bool(raw.get("enabled", True)),
                data_drift=bool(drift.get("enabled", True)),
                min_drifted_columns=int(drift.get("min_drifted_columns", 1)),
                performance=bool(perf.get("enabled", True)),
                min_drop={str(k): float(v) for k, v in (perf.get("min_drop") or {}).items()},
                min_degraded_metrics=int(perf.get("min_degraded_metrics", 1)),
                window=str(raw.get("window", "7d")),
                window_end="now" if raw.get("window_end") == "now" else "event",
            )
        )
    return rules


def _meta(name: str, namespace: str) -> ObjectMeta:
    return ObjectMeta(
        name=name, namespace=namespace, labels={"app.kubernetes.io/part-of": "driftloop"}
    )


def drift_event_source(
    namespace: str = "driftloop", kafka_url: str = "driftloop-kafka-bootstrap:9092",
    topic: str = "driftloop.drift-events",
) -> m.EventSource:  # fmt: skip
    return m.EventSource(
        metadata=_meta(SOURCE, namespace),
        spec=m.EventSourceSpec(
            kafka={
                EVENT: m.KafkaEventSource(
                    url=kafka_url,
                    topic=topic,
                    json_body=True,
                    consumer_group=m.KafkaConsumerGroup(group_name="argo-events-retrain"),
                    connection_backoff=m.Backoff(steps=5),
                )
            }
        ),
    )


def _field(name: str, key: str) -> m.PayloadField:
    return m.PayloadField(name=name, path=f"body.{key}")


def severity_filters(rules: list[ModelRule]) -> list[m.ExprFilter]:
    """One expression per way an event can be severe enough (the Sensor OR-s them). A
    missing path makes an expression false, so each names only fields its kind has."""
    out = []
    model = _field("model", "model_name")
    kind = _field("kind", "kind")
    for rule in rules:
        if not rule.enabled:
            continue
        if rule.data_drift:
            out.append(
                m.ExprFilter(
                    expr=f'model == "{rule.model}" && kind == "data_drift"'
                    f" && drifted >= {rule.min_drifted_columns}",
                    fields=[model, kind, _field("drifted", "metrics.drifted_columns")],
                )
            )
        if not rule.performance:
            continue
        metrics = sorted(rule.min_drop)
        combinations = itertools.combinations(metrics, rule.min_degraded_metrics)
        for chosen in combinations if metrics else [()]:
            floors = "".join(f" && drop{i} >= {rule.min_drop[x]!r}" for i, x in enumerate(chosen))
            drops = [_field(f"drop{i}", f"metrics.drop_{x}") for i, x in enumerate(chosen)]
            out.append(
                m.ExprFilter(
                    expr=f'model == "{rule.model}" && kind == "performance_degraded"{floors}',
                    fields=[model, kind, *drops],
                )
            )
    if not out:  # no filter at all would pass every event: pass none
        out.append(m.ExprFilter(expr='kind == "no trigger.yaml enables runs"', fields=[kind]))
    return out


def _per_model(rules: list[ModelRule], value: dict[str, str], default: str) -> str:
    """A Go template choosing a value by the event's model."""
    text = ""
    for i, rule in enumerate(rules):
        text += "{{ if" if i == 0 else "{{ else if"
        text += f' eq .Input.body.model_name "{rule.model}" }}}}{value[rule.model]}'
    return text + f"{{{{ else }}}}{default}{{{{ end }}}}" if rules else default


RUN_NAME = (
    '{{ $b := .Input.body }}retrain-{{ $b.model_name | lower | replace "_" "-"'
    ' | replace "." "-" | trunc 30 | trimSuffix "-" }}-{{ printf "%s/%s/%s/%s"'
    " $b.model_name $b.model_version $b.window.start $b.window.end | sha256sum | trunc 16 }}"
)
"""The Workflow's name: one per (model, model version, window)."""


def retrain_sensor(rules: list[ModelRule], namespace: str = "driftloop") -> m.Sensor:
    names = list(PARAMETERS)  # model, reason, trigger-event-id, window, window-end, change-point
    workflow = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        # No namespace: Argo Events submits into the Sensor's own (each overlay's).
        "metadata": {"name": "retrain-from-event"},
        "spec": {
            "workflowTemplateRef": {"name": NAME},
            "arguments": {"parameters": [{"name": n, "value": "from-event"} for n in names]},
        },
    }
    window_end = "{{ .Input.body.window.end }}"
    templates = {
        "metadata.name": RUN_NAME,
        "model": "{{ .Input.body.model_name }}",
        "reason": "{{ .Input.body.kind }}",
        "trigger-event-id": "{{ .Input.body.event_id }}",
        "window": _per_model(rules, {r.model: r.window for r in rules}, str(PARAMETERS["window"])),
        "window-end": _per_model(
            rules,
            {r.model: window_end if r.window_end == "event" else "" for r in rules},
            window_end,
        ),
        # The monitor's change point (a drift event of schema version 1 has none: "").
        "change-point": "{{ with .Input.body.change_point }}{{ . }}{{ end }}",
    }
    dests = {"metadata.name": "metadata.name"} | {
        n: f"spec.arguments.parameters.{i}.value" for i, n in enumerate(names)
    }
    return m.Sensor(
        metadata=_meta("driftloop-retrain", namespace),
        spec=m.SensorSpec(
            dependencies=[
                m.EventDependency(
                    name=EVENT,
                    event_source_name=SOURCE,
                    event_name=EVENT,
                    filters=m.EventDependencyFilter(
                        exprs=severity_filters(rules), expr_logical_operator="or"
                    ),
                )
            ],
            triggers=[
                m.Trigger(
                    at_least_once=True,
                    retry_strategy=m.Backoff(steps=3),
                    template=m.TriggerTemplate(
                        name="submit-retrain",
                        argo_workflow=m.ArgoWorkflowTrigger(
                            operation="submit",
                            # Inline YAML: Hera's model of `resource` cannot hold an object.
                            source=m.ArtifactLocation(inline=yaml.safe_dump(workflow)),
                            parameters=[
                                m.TriggerParameter(
                                    src=m.TriggerParameterSource(
                                        dependency_name=EVENT, data_template=templates[key]
                                    ),
                                    dest=dest,
                                )
                                for key, dest in dests.items()
                            ],
                        ),
                    ),
                )
            ],
        ),
    )
