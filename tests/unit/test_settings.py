from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from driftloop.settings import TOPICS, Settings, get_settings


def test_defaults_bind_loopback_and_manage_the_local_stack(monkeypatch):
    for name in (
        "DRIFTLOOP_KAFKA_BOOTSTRAP_SERVERS",
        "DRIFTLOOP_RAY_ADDRESS",
        "DRIFTLOOP_BIND_HOST",
    ):
        monkeypatch.delenv(name, raising=False)
    s = Settings()
    assert s.bind_host == "127.0.0.1"
    assert s.kafka_managed and s.ray_managed
    assert s.kafka_bootstrap == ["127.0.0.1:9092"]
    assert s.dashboard_url == "http://127.0.0.1:8265"
    assert s.serve_url == "http://127.0.0.1:8000"
    assert s.state_dir.is_absolute() and s.state_dir.name == ".driftloop"


def test_environment_overrides_and_external_clusters(monkeypatch):
    monkeypatch.setenv("DRIFTLOOP_KAFKA_BOOTSTRAP_SERVERS", "k1:9092, k2:9092")
    monkeypatch.setenv("DRIFTLOOP_RAY_ADDRESS", "10.0.0.5:6379")
    monkeypatch.setenv("DRIFTLOOP_RAY_DASHBOARD_URL", "http://ray.internal:8265/")
    monkeypatch.setenv("DRIFTLOOP_TOPIC_PREFIX", "staging.")
    monkeypatch.setenv("DRIFTLOOP_TOPIC_PARTITIONS", "6")
    s = Settings()
    assert not s.kafka_managed and not s.ray_managed
    assert s.kafka_bootstrap == ["k1:9092", "k2:9092"]
    assert s.ray_gcs_address == "10.0.0.5:6379"
    assert s.dashboard_url == "http://ray.internal:8265"
    assert s.topic("dlq") == "staging.dlq"
    assert s.topic_partitions == 6


def test_bad_values_name_the_setting(monkeypatch):
    monkeypatch.setenv("DRIFTLOOP_TOPIC_PARTITIONS", "zero")
    with pytest.raises(ValidationError, match="topic_partitions"):
        Settings()


def test_unknown_keyword_is_an_error():
    with pytest.raises(ValidationError, match="kafka_bootstrap_server"):
        Settings(kafka_bootstrap_server="typo:9092")  # type: ignore[call-arg]


def test_topic_prefix_must_be_a_legal_kafka_name():
    with pytest.raises(ValidationError, match="topic_prefix"):
        Settings(topic_prefix="bad prefix/")


def test_topics_are_the_contracts_and_unknown_ones_refused():
    s = Settings(topic_prefix="x.")
    assert [s.topic(t) for t in TOPICS] == [
        "x.transactions",
        "x.labels",
        "x.predictions",
        "x.drift-events",
        "x.workflow-events",
        "x.dlq",
    ]
    with pytest.raises(ValueError, match="unknown topic 'transaction'"):
        s.topic("transaction")


def test_one_settings_object_per_process_and_nothing_created(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    try:
        assert get_settings() is get_settings()
        assert get_settings().state_dir == Path(tmp_path, ".driftloop")
        assert list(tmp_path.iterdir()) == []
    finally:
        get_settings.cache_clear()
