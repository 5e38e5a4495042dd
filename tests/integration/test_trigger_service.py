"""The trigger service against the real broker and the real Ray head, run as a process.

Runs it submits go to the local executor on Ray; the tests' deploy directory has no
model spec and their state directory no history, so each run fails in its first step:
these tests are about how many runs exist, not about training.
"""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from driftloop.events import DeadLetter, DriftEvent, WorkflowEvent
from driftloop.kafka import EventProducer
from driftloop.runs import MAX_DRIVERS, run_id_for_event
from driftloop.settings import Settings
from tests.integration.trigger_support import (
    decisions,
    deploy_dir,
    drift_event,
    environment,
    finish,
    performance_event,
    read_all,
    recorded_offsets,
    runs,
    scrape_until_exit,
    start,
    tail,
    wait_runs_finished,
)

BURST = 100
# The burst's trigger process and its two failing runs, or three trigger processes and
# one failing run: each test (with its setup and teardown) needs at most about 16 s.
pytestmark = pytest.mark.timeout(60)


@dataclass(frozen=True)
class Burst:
    settings: Settings
    root: Path
    events: list[DriftEvent]
    weak: DriftEvent
    perf: DriftEvent
    orphan: DriftEvent
    published_in: float
    metrics: str


@pytest.fixture(scope="module")
def burst(base_settings, tmp_path_factory):
    """One trigger process over: 100 drift events of `fraud` published within a second
    (and 5 of them again), a malformed record, a weak data drift event and then a
    performance event of `fraud-perf`, and an event of a model without a policy."""
    from tests.integration.conftest import _isolated

    topics = _isolated(base_settings)
    settings = next(topics)
    root = tmp_path_factory.mktemp("trigger-burst")
    deploy = deploy_dir(root, {"fraud": 2, "fraud-perf": 3})
    events = [drift_event("fraud", i) for i in range(BURST)]
    weak = drift_event("fraud-perf", 0, drifted=2)
    perf = performance_event("fraud-perf", 1)
    orphan = drift_event("no-policy", 0)
    try:
        with EventProducer(settings) as producer:
            began = time.monotonic()
            futures = [producer.send(e) for e in events]
            for future in futures:
                future.get()
            published_in = time.monotonic() - began
            for e in events[:5]:
                producer.send(e)
            producer.send_raw("drift-events", b'{"kind": "data_drift", "model_name": 7}', key=b"x")
            for e in (weak, perf, orphan):
                producer.send(e)
            producer.flush()
        env, log = environment(settings, root, deploy), root / "trigger.log"
        proc = start(env, log)
        body = scrape_until_exit(proc, int(env["DRIFTLOOP_TRIGGER_METRICS_PORT"]), timeout_s=120)
        assert finish(proc, log) == 0, tail(log)
        yield Burst(settings, root, events, weak, perf, orphan, published_in, body)
    finally:
        wait_runs_finished(root)  # leave nothing running on the shared Ray head
        next(topics, None)


def test_a_burst_of_drift_events_becomes_exactly_one_run(burst):
    root, events = burst.root, burst.events
    assert burst.published_in < 1.0, f"the burst took {burst.published_in:.2f} s to publish"
    fraud_runs = runs(root, "fraud")
    assert [r.run_id for r in fraud_runs] == [run_id_for_event(events[0].event_id)]
    params = fraud_runs[0].parameters
    assert params["trigger-event-id"] == events[0].event_id
    assert params["reason"] == "data_drift" and params["window"] == "30d"
    assert params["window-end"] == events[0].window.end.isoformat()

    mine = [d for d in decisions(root) if d["model"] == "fraud"]
    assert len(mine) == BURST  # one decision per event id; the 5 repeats made none
    assert sum(int(str(d["deliveries"])) for d in mine) == BURST + 5
    submitted = [d for d in mine if d["outcome"] == "submit"]
    skipped = [d for d in mine if d["outcome"] == "skip"]
    assert [d["event_id"] for d in submitted] == [events[0].event_id]
    assert submitted[0]["created"] == 1 and submitted[0]["submitted_at"] is not None
    assert len(skipped) == BURST - 1
    assert {d["reason"] for d in skipped} <= {"active_run", "cooldown"}
    assert all(str(d["detail"]).startswith("run ") for d in skipped)


def test_each_decision_is_a_workflow_event(burst):
    events, perf = burst.events, burst.perf
    expected = {e.event_id for e in (*events, burst.weak, perf, burst.orphan)}
    got = read_all(
        burst.settings, WorkflowEvent,
        lambda got: {w.trigger_event_id for w in got if w.phase == "skipped"} >= expected - {
            events[0].event_id, perf.event_id},
    )  # fmt: skip
    skipped = {w.event_id: w for w in got if w.phase == "skipped"}
    assert len(skipped) == BURST - 1 + 2  # the 99, the weak one, the one without a policy
    assert {w.trigger_event_id for w in skipped.values()} == expected - {
        events[0].event_id, perf.event_id}  # fmt: skip
    assert all(w.message and w.run_id == run_id_for_event(str(w.trigger_event_id))
               for w in skipped.values())  # fmt: skip
    submitted = {w.run_id for w in got if w.phase == "submitted"}
    assert submitted == {run_id_for_event(events[0].event_id), run_id_for_event(perf.event_id)}


def test_a_performance_event_triggers_where_data_drift_does_not(burst):
    root, weak, perf = burst.root, burst.weak, burst.perf
    by_event = {d["event_id"]: d for d in decisions(root)}
    assert by_event[weak.event_id]["outcome"] == "skip"
    assert by_event[weak.event_id]["reason"] == "below_severity"
    assert "2 drifted column(s)" in str(by_event[weak.event_id]["detail"])
    assert by_event[perf.event_id]["outcome"] == "submit"
    assert [r.run_id for r in runs(root, "fraud-perf")] == [run_id_for_event(perf.event_id)]
    assert runs(root, "fraud-perf")[0].parameters["reason"] == "performance_degraded"
    assert by_event[burst.orphan.event_id]["reason"] == "no_policy"


def test_a_malformed_record_goes_to_the_dlq(burst):
    settings, group = burst.settings, f"trigger-{burst.root.name}"
    letters = read_all(
        settings, DeadLetter, lambda got: any(x.consumer_group == group for x in got)
    )
    mine = [x for x in letters if x.consumer_group == group]
    assert len(mine) == 1
    assert mine[0].reason.startswith("invalid record")
    assert mine[0].source_topic == settings.topic("drift-events")


def test_metrics_count_events_decisions_submissions_and_lag(burst):
    body = burst.metrics
    assert 'driftloop_trigger_events_total{kind="data_drift",model="fraud"} 105.0' in body
    assert "driftloop_trigger_duplicate_events_total 5.0" in body
    assert (
        'driftloop_trigger_decisions_total{model="fraud",outcome="submit",reason="severe"} 1.0'
        in body
    )
    skips = sum(
        float(line.rsplit(" ", 1)[1])
        for line in body.splitlines()
        if line.startswith("driftloop_trigger_decisions_total{")
        and 'model="fraud",' in line and 'outcome="skip"' in line
    )  # fmt: skip
    assert skips == BURST - 1
    assert (
        'driftloop_trigger_submissions_total{backend="local",created="true",model="fraud"} 1.0'
        in body
    )
    assert "driftloop_trigger_consumer_lag 0.0" in body
    assert "driftloop_trigger_pending_submissions 0.0" in body


def test_sigkill_between_deciding_and_submitting_still_gives_one_run(own_topics, tmp_path: Path):
    """Three processes: one killed after recording its decisions and before submitting
    (the DRIFTLOOP_TRIGGER_KILL_AT test hook), one killed right after the backend accepted
    the run and before that was recorded, and one that finishes the job."""
    settings = own_topics
    deploy = deploy_dir(tmp_path, {"fraud": 2})
    events = [drift_event("fraud", i) for i in range(10)]
    with EventProducer(settings) as producer:
        for e in events:
            producer.send(e)
        producer.flush()
    run_id = run_id_for_event(events[0].event_id)
    log = tmp_path / "trigger.log"
    try:
        env = environment(settings, tmp_path, deploy, trigger_kill_at="before_submit")
        assert finish(start(env, log), log) == -signal.SIGKILL, tail(log)
        recorded = decisions(tmp_path)
        assert len(recorded) == len(events)  # all decided and recorded before the kill
        assert [d["run_id"] for d in recorded if d["outcome"] == "submit"] == [run_id]
        assert all(d["submitted_at"] is None for d in recorded)
        assert recorded_offsets(tmp_path) == len(events)  # with the decisions, atomically
        assert runs(tmp_path) == []  # killed before submitting

        env = environment(settings, tmp_path, deploy, trigger_kill_at="after_submit")
        assert finish(start(env, log), log) == -signal.SIGKILL, tail(log)
        assert [r.run_id for r in runs(tmp_path)] == [run_id]  # submitted, not yet recorded
        assert next(d for d in decisions(tmp_path) if d["run_id"] == run_id)["created"] is None

        env = environment(settings, tmp_path, deploy)
        assert finish(start(env, log), log) == 0, tail(log)
        assert [r.run_id for r in runs(tmp_path)] == [run_id]  # still exactly one
        final = decisions(tmp_path)
        assert len(final) == len(events)
        submitted = [d for d in final if d["outcome"] == "submit"]
        assert len(submitted) == 1
        assert submitted[0]["created"] == 0  # the backend had it: created=False
        assert all(d["published"] == 1 for d in final)
    finally:
        wait_runs_finished(tmp_path)


def test_a_driver_that_keeps_dying_is_restarted_then_failed_while_the_trigger_runs(
    own_topics, tmp_path: Path
):
    """The trigger submits a run; then every driver dies at start (the deploy directory's
    template broke after the trigger loaded it). Without a restart of the trigger, its
    periodic recovery starts new drivers until MAX_DRIVERS died, then fails the run — so
    it stops counting as the model's active run."""
    settings = own_topics
    deploy = deploy_dir(tmp_path, {"fraud": 2})
    env = environment(settings, tmp_path, deploy, trigger_recover_s="1")
    log = tmp_path / "trigger.log"
    proc = start(env, log, idle_s=300)
    try:
        deadline = time.monotonic() + 60
        while "reading " not in log.read_text(errors="replace"):
            assert proc.poll() is None and time.monotonic() < deadline, tail(log)
            time.sleep(0.2)
        template = deploy / "k8s" / "base" / "workflows" / "retrain-template.yaml"
        template.write_text(template.read_text().replace("dag:", "steps:", 1))
        event = drift_event("fraud", 0)
        with EventProducer(settings) as producer:
            producer.send(event)
            producer.flush()
        run_id = run_id_for_event(event.event_id)
        seen: set[str] = set()
        deadline = time.monotonic() + 180
        while True:
            records = runs(tmp_path)
            seen |= {r.status for r in records}
            if records and records[0].finished:
                break
            assert proc.poll() is None and time.monotonic() < deadline, (records, tail(log))
            time.sleep(0.5)
        [record] = records
        assert record.run_id == run_id
        assert record.status == "failed" and "3 drivers died" in record.message, record
        assert len(record.drivers) == MAX_DRIVERS
        assert "running" not in seen  # no driver got as far as running it
        assert "runs started, resumed or failed for want of a driver" in tail(log)
    finally:
        proc.terminate()
        finish(proc, log)
