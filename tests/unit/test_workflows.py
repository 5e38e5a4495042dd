"""The rendered Argo manifests: fresh, faithful to Hera's models, and runnable locally
only within the features the local executor implements."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from driftloop_workflows.render import OUT, render
from hera.events import models as events
from hera.workflows import models as workflows

from driftloop.runs import ArgoBackend, UnsupportedFeature, load_template, run_id_for_event
from driftloop.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
RENDERED = ROOT / OUT


def test_committed_manifests_are_fresh():
    assert render(ROOT, check=True) == []


@pytest.mark.parametrize("path", sorted(RENDERED.glob("*.yaml")), ids=lambda p: p.name)
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
    assert set(template.defaults()) == {
        "model", "reason", "trigger-event-id", "window", "window-end",
    }  # fmt: skip
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


class _FakeArgo(BaseHTTPRequestHandler):
    """Stands in for an Argo server, which cannot run here: records what it is sent."""

    seen: list[tuple[str, dict[str, Any], str]] = []  # noqa: RUF012

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _FakeArgo.seen.append((self.path, body, self.headers.get("Authorization", "")))
        name = body["workflow"]["metadata"]["name"]
        exists = sum(1 for _, b, _ in _FakeArgo.seen if b["workflow"]["metadata"]["name"] == name)
        status = 200 if exists == 1 else 409
        answer = body["workflow"] if status == 200 else {"message": "already exists", "code": 6}
        payload = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


def test_the_argo_backend_sends_a_template_ref_under_a_deterministic_name():
    server = HTTPServer(("127.0.0.1", 0), _FakeArgo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        settings = Settings(
            argo_server=f"http://127.0.0.1:{server.server_port}", argo_namespace="ml",
            argo_token="s3cret",
        )  # fmt: skip
        backend = ArgoBackend(settings)
        parameters = {"model": "fraud", "reason": "data_drift", "trigger-event-id": "evt-9",
                      "window": "30d", "window-end": ""}  # fmt: skip
        run_id = run_id_for_event("evt-9")
        assert backend.submit(parameters, run_id).created
        assert not backend.submit(parameters, run_id).created  # 409: already submitted
    finally:
        server.shutdown()
    path, body, auth = _FakeArgo.seen[0]
    assert path == "/api/v1/workflows/ml" and auth == "Bearer s3cret"
    workflow = body["workflow"]
    assert workflow["metadata"]["name"] == run_id == run_id_for_event("evt-9")
    assert workflow["spec"]["workflowTemplateRef"] == {"name": "driftloop-retrain"}
    sent = {p["name"]: p["value"] for p in workflow["spec"]["arguments"]["parameters"]}
    assert sent == parameters
