"""The pure parts of `make k8s-up`: the CRDs made from the vendored schemas for operators
that do not run here, and the kubeconfig the controllers and tests use."""

from __future__ import annotations

import json
from pathlib import Path

from driftloop_workflows.k8s._crds import STORED_ONLY, schema_crds
from driftloop_workflows.k8s._pki import Pki, kubeconfig

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "deploy/k8s/schemas"


def test_stored_only_operators_are_vendored() -> None:
    for operator, version in STORED_ONLY.items():
        assert (SCHEMAS / operator / version / "schemas.json").is_file()


def test_schema_crds_carry_each_vendored_schema_unchanged() -> None:
    crds = schema_crds(SCHEMAS, "strimzi", STORED_ONLY["strimzi"])
    by_name = {c["metadata"]["name"]: c for c in crds}
    assert set(by_name) == {
        "kafkas.kafka.strimzi.io",
        "kafkanodepools.kafka.strimzi.io",
        "kafkatopics.kafka.strimzi.io",
    }
    vendored = json.loads(
        (SCHEMAS / "strimzi" / STORED_ONLY["strimzi"] / "schemas.json").read_text()
    )
    kafka = by_name["kafkas.kafka.strimzi.io"]["spec"]
    assert kafka["names"]["kind"] == "Kafka"
    assert kafka["scope"] == "Namespaced"
    assert [v["name"] for v in kafka["versions"]] == ["v1"]
    assert (
        kafka["versions"][0]["schema"]["openAPIV3Schema"]
        == vendored["kafka.strimzi.io/v1"]["Kafka"]
    )


def test_every_schema_crd_has_exactly_one_storage_version() -> None:
    for operator, version in STORED_ONLY.items():
        for crd in schema_crds(SCHEMAS, operator, version):
            assert sum(v["storage"] for v in crd["spec"]["versions"]) == 1, crd["metadata"]


def test_kubeconfig_names_the_client_certificate_and_the_ca(tmp_path: Path) -> None:
    text = kubeconfig(Pki(tmp_path), "https://127.0.0.1:16443")
    assert "server: https://127.0.0.1:16443" in text
    assert f"certificate-authority: {tmp_path / 'ca.crt'}" in text
    assert f"client-certificate: {tmp_path / 'admin.crt'}" in text
    assert "token" not in text and "insecure" not in text
