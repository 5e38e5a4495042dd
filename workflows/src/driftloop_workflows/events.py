"""Argo Events: a Kafka EventSource on ``drift-events`` and a Sensor that submits
``driftloop-retrain`` for each drift or performance event, at least once.

The submitted Workflow is named after the event (``retrain-<event_id>``), so a redelivered
event meets "already exists" instead of starting a second run — the same name the
trigger service's Argo backend uses, so the two paths never double a run.
"""

from __future__ import annotations

import yaml
from hera.events import models as m
from hera.events.models.io.k8s.apimachinery.pkg.apis.meta.v1 import ObjectMeta

from driftloop_workflows.retrain import NAME

SOURCE = "driftloop-kafka"
EVENT = "drift"


API_VERSION = "argoproj.io/v1alpha1"


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


def _from_event(key: str, dest: str) -> m.TriggerParameter:
    return m.TriggerParameter(
        src=m.TriggerParameterSource(dependency_name=EVENT, data_key=f"body.{key}"), dest=dest
    )


def retrain_sensor(namespace: str = "driftloop") -> m.Sensor:
    workflow = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        # No namespace: Argo Events submits into the Sensor's own (each overlay's).
        "metadata": {"name": "retrain-from-event"},
        "spec": {
            "workflowTemplateRef": {"name": NAME},
            "arguments": {
                "parameters": [
                    {"name": "model", "value": "from-event"},
                    {"name": "reason", "value": "from-event"},
                    {"name": "trigger-event-id", "value": "from-event"},
                ]
            },
        },
    }
    return m.Sensor(
        metadata=_meta("driftloop-retrain", namespace),
        spec=m.SensorSpec(
            dependencies=[
                m.EventDependency(name=EVENT, event_source_name=SOURCE, event_name=EVENT)
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
                                        dependency_name=EVENT,
                                        data_template="retrain-{{ .Input.body.event_id }}",
                                    ),
                                    dest="metadata.name",
                                ),
                                _from_event("model_name", "spec.arguments.parameters.0.value"),
                                _from_event("kind", "spec.arguments.parameters.1.value"),
                                _from_event("event_id", "spec.arguments.parameters.2.value"),
                            ],
                        ),
                    ),
                )
            ],
        ),
    )
