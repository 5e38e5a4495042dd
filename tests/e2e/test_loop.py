"""The whole loop on the real stack, as `make demo` runs it but shorter: nobody touches
anything between the drift's onset and v2 serving.

Real parts: Kafka, Ray (Train, Jobs, Serve), Feast on sqlite/parquet, git, and the stream,
monitor, trigger and sync services as processes. Nothing is mocked."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from driftloop_demo import DemoConfig, DemoResult

from tests.e2e.loop_support import demo_loop

pytestmark = pytest.mark.timeout(1500)

CONFIG = DemoConfig(
    default_ports=False,  # metrics on free ports: the test may share the machine
    after_v2_s=20,
    timeout_s=1000,
)


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoResult]:
    with demo_loop(CONFIG, tmp_path_factory.mktemp("loop") / "demo", "e2e") as result:
        yield result


def test_the_loop_closes_by_itself(loop: DemoResult) -> None:
    assert loop.failure is None, loop.failure
    assert loop.v2 is not None and loop.v2 != loop.v1


def test_drift_is_detected_after_the_onset_and_not_before(loop: DemoResult) -> None:
    assert loop.events, "no drift event"
    assert loop.virtual_onset is not None
    early = [e for e in loop.events if e.window.end < loop.virtual_onset]
    assert not early, [(e.kind, e.window) for e in early]


def test_exactly_one_retraining_run_and_its_commit_names_the_event(loop: DemoResult) -> None:
    assert len(loop.runs) == 1, [r.run_id for r in loop.runs]
    run = loop.runs[0]
    assert run.status == "succeeded", run.message
    event_id = run.parameters["trigger-event-id"]
    assert event_id in {e.event_id for e in loop.events}
    assert loop.promotion_commit is not None
    assert f"triggered by event {event_id}" in loop.promotion_message
    assert loop.v2 is not None and loop.v2 in loop.promotion_message


def test_v2_is_what_serves(loop: DemoResult) -> None:
    answer = httpx.get(f"{loop.settings.serve_url}/{loop.config.model}/model", timeout=10)
    assert answer.status_code == 200
    assert answer.json()["model_version"] == loop.v2


def test_v2_beats_v1_on_post_drift_labelled_data(loop: DemoResult) -> None:
    comparison = loop.comparison
    assert comparison is not None
    assert comparison.positives >= 20, comparison
    print(f"\npost-drift rows {comparison.rows} ({comparison.positives} fraud): "
          f"PR-AUC v1 {comparison.pr_auc['v1']:.3f}, v2 {comparison.pr_auc['v2']:.3f}")  # fmt: skip
    assert comparison.pr_auc["v2"] > comparison.pr_auc["v1"]


def test_counts_reconcile(loop: DemoResult) -> None:
    c = loop.counts
    assert c.sent > 0
    assert c.predicted_failed == 0
    # every payment: on the topic, checkpointed by the stream, one feature row offline
    assert c.sent == c.transactions == c.stream_consumed == c.feature_rows
    # every payment: answered, logged once, checkpointed and windowed by the monitor
    assert c.sent == c.predicted_ok == c.predictions_logged == c.predictions_distinct
    assert c.predictions_logged == c.monitor_consumed == c.rows_windowed
    assert 0 < c.rows_in_closed_windows <= c.rows_windowed
