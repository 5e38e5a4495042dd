"""The request the Argo backend sends, checked against a stand-in HTTP server (an Argo
server cannot run in this tier; the Kubernetes tier runs the real one)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

from driftloop.runs import ArgoBackend, run_id_for_event
from driftloop.settings import Settings


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
