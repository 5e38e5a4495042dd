"""Integration tests talk to the real Kafka and Ray that `make up` starts.

Each test session works on its own topic prefix, so it never reads the demo's data and
leaves no topics behind.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from driftloop.kafka import KafkaUnavailable, connect_admin, ensure_topics
from driftloop.settings import TOPICS, Settings


@pytest.fixture(scope="session")
def base_settings() -> Settings:
    return Settings()


def _isolated(base: Settings) -> Iterator[Settings]:
    s = base.model_copy(update={"topic_prefix": f"it-{uuid.uuid4().hex[:8]}."})
    try:
        ensure_topics(s)
    except KafkaUnavailable as exc:
        pytest.fail(f"{exc} — integration tests need the stack: run `make up` or `make test`")
    yield s
    admin = connect_admin(s)
    try:
        admin.delete_topics([s.topic(t) for t in TOPICS])
    finally:
        admin.close()


@pytest.fixture(scope="session")
def settings(base_settings: Settings) -> Iterator[Settings]:
    """Topics of this test session (shared by its tests)."""
    yield from _isolated(base_settings)


@pytest.fixture
def own_topics(base_settings: Settings) -> Iterator[Settings]:
    """Topics for one test alone, for tests that count everything on a topic."""
    yield from _isolated(base_settings)


# Worlds built once per session and shared by the tests of several modules; a test that
# changes one puts it back.
from tests.integration.history_worlds import *  # noqa: E402, F403
from tests.integration.serving_worlds import *  # noqa: E402, F403
