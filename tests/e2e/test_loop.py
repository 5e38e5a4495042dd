"""The whole loop on the real stack, as `make demo` runs it but shorter, with every part
SIGKILLed once in the middle of it — the stream service, a Serve replica, the monitor, the
trigger and the sync service, each at the moment it holds the most in flight. Nobody
touches anything between the drift's onset and v2 serving; afterwards the model that
serves must be good again, every count reconciles, and the report is written.

One loop run serves every test of this module (it is the suite's most expensive world).

Real parts: Kafka, Ray (Train, Jobs, Serve), Feast on sqlite/parquet, git, and the stream,
monitor, trigger and sync services as processes; the kills are real SIGKILLs of real
processes. Nothing is mocked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from driftloop_demo import DemoConfig, DemoResult
from driftloop_demo._evidence import PR_AUC_SHARE, RECALL_SHARE, read_topic
from driftloop_demo._faults import FAULTS, replicas
from driftloop_demo._report import summary_lines, write_report

from driftloop.apikey import client_headers
from driftloop.events import WorkflowEvent
from driftloop.gitops import read_state
from driftloop.runs import RunRecord
from tests.e2e.loop_support import demo_loop

pytestmark = pytest.mark.timeout(1200)

CONFIG = DemoConfig(
    default_ports=False,  # metrics on free ports: the test may share the machine
    after_v2_s=20,
    # Traffic stops after_v2_s after v2 serves, alerts firing or not (their rules have a test
    # of their own): one window of v2's, to keep the suite short. Quiet over more windows is
    # bench/heal.py's measure (20 windows of v2 on crypto-cash-out: no drift event), since the
    # monitor lets aggregate columns settle after the change v2 was trained for.
    alerts_resolve_s=0,
    timeout_s=900,
    replicas=2,  # what survives a replica's death: the other one answers the retries
    # payments scored in calls of up to 8 (gathered at most 0.1 s): the loop is CPU-bound
    # on two cores, and a call costs Serve ~25 ms of CPU whatever it holds. The one-payment
    # route is what the serving tests drive.
    predict_batch=8,
    faults=FAULTS,
    seed=7,
)
LOST_LOGS_BOUND = 64
"""Predictions a SIGKILLed replica may have answered but not yet handed to Kafka: its
log queue lingers 20 ms (serve.yaml), and at most the traffic's calls in flight (4 calls of
up to 8 payments) are in it."""
PR_AUC_FLOOR, RECALL_FLOOR = PR_AUC_SHARE, RECALL_SHARE
"""This seed's loop must heal: v2's post-drift PR-AUC and recall reach the goal's shares of
v1's pre-drift holdout figures. Measured with the simulator's customer pacer (each
customer's payments at least 1 s apart in wall time, so each is scored with its
predecessor in its features): 0.98 and 1.15 on this seed, with the fault round; 0.96-1.02
and 1.11-1.15 on seed 3 of the three learnable scenarios (bench/heal.py). Without the
pacer this seed measured 0.68-0.72 PR-AUC share: most fraud rows were served features
that missed their episode's previous payment."""


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoResult]:
    with demo_loop(CONFIG, tmp_path_factory.mktemp("loop") / "demo", "e2e") as result:
        report = [f"{f.name}: pid {f.pid}, {f.detail}, back in {f.down_s} s" for f in result.faults]
        print("\n" + "\n".join(report + summary_lines(result)))
        if result.scores is not None and len(result.scores):
            # every logged prediction with its served features and label, for a post-mortem
            result.scores.astype({"scored_at": "datetime64[ns, UTC]"}).to_parquet(
                result.root / "scores.parquet"
            )
        yield result


# -- the loop closes, by itself: one promoting run, after at most a refused one -------------


def _promoting(loop: DemoResult) -> RunRecord:
    return loop.runs[-1]


def test_the_loop_closes_by_itself_with_one_promoting_run(loop: DemoResult) -> None:
    """One run promotes. A run before it may only have been refused by the gate (a
    post-change holdout too small to judge, say): the refusal does not silence the trigger
    for the cooldown, a follow-up run within the daily budget takes its place."""
    assert loop.failure is None, loop.failure
    assert loop.v2 is not None and loop.v2 != loop.v1
    assert 1 <= len(loop.runs) <= 2, [r.run_id for r in loop.runs]
    assert all(r.status == "succeeded" for r in loop.runs), [r.message for r in loop.runs]
    for refused in loop.runs[:-1]:
        outcome = refused.steps["promote"].result
        assert outcome is not None, refused.steps
        result = json.loads(outcome)
        assert result["promoted"] is False and result["why"] == "failed the gate", result
    published = read_topic(loop.settings, WorkflowEvent)
    submitted = {e.run_id for e in published if e.phase == "submitted"}
    promoted = {e.run_id for e in published if e.phase == "promoted"}
    assert submitted == {r.run_id for r in loop.runs}, Counter(e.phase for e in published)
    assert promoted == {_promoting(loop).run_id}, Counter(e.phase for e in published)


def test_drift_is_detected_after_the_onset_and_not_before(loop: DemoResult) -> None:
    assert loop.events, "no drift event"
    assert loop.virtual_onset is not None
    early = [e for e in loop.events if e.window.end < loop.virtual_onset]
    assert not early, [(e.kind, e.window) for e in early]


def test_the_run_learns_from_a_change_point_near_the_onset_and_growing_evidence(
    loop: DemoResult,
) -> None:
    """Every drift event about v1 carries the monitor's change point; the one the run was
    started from dates the change within a window or two of the onset (the start of the
    window where the streak began, or where the version's series worsened)."""
    from datetime import datetime

    assert loop.virtual_onset is not None
    about_v1 = [e for e in loop.events if e.model_version == loop.v1]
    assert about_v1 and all(e.change_point is not None for e in about_v1)
    change = datetime.fromisoformat(loop.runs[0].parameters["change-point"])
    early = (loop.virtual_onset - change).total_seconds()
    window = CONFIG.window_rows / CONFIG.rate * CONFIG.time_warp  # event-time seconds
    # a window's resolution: the window holding the onset may read calm (part old traffic)
    assert -window <= early <= 2 * window, (change, loop.virtual_onset, window)
    counts = [e.evidence.labelled_rows for e in about_v1 if e.evidence is not None]
    assert counts and max(counts) >= CONFIG.evidence_rows


def test_the_run_waited_for_evidence_and_says_so(loop: DemoResult) -> None:
    """The trigger held the first severe events until enough labelled traffic after the
    change point existed, and published that it was waiting."""
    run = loop.runs[0]
    event_id = run.parameters["trigger-event-id"]
    event = next(e for e in loop.events if e.event_id == event_id)
    assert event.evidence is not None
    assert event.evidence.labelled_rows >= CONFIG.evidence_rows
    assert event.evidence.positives >= CONFIG.evidence_positives
    assert run.parameters["change-point"], run.parameters
    published = read_topic(loop.settings, WorkflowEvent)
    waiting = [e for e in published if e.phase == "waiting"]
    assert waiting, Counter(e.phase for e in published)
    assert "labelled rows" in waiting[0].message


def test_the_promotion_commit_names_the_event_and_v2_serves_from_it(loop: DemoResult) -> None:
    event_id = _promoting(loop).parameters["trigger-event-id"]
    assert event_id in {e.event_id for e in loop.events}
    assert loop.promotion_commit is not None
    assert f"triggered by event {event_id}" in loop.promotion_message
    assert loop.v2 is not None and loop.v2 in loop.promotion_message
    url = f"{loop.settings.serve_url}/{loop.config.model}/model"
    answer = httpx.get(url, headers=client_headers(loop.settings), timeout=10)
    assert answer.status_code == 200 and answer.json()["model_version"] == loop.v2
    state = read_state(loop.settings)
    assert state is not None and state.synced_sha == loop.promotion_commit


# -- the model that serves after the drift is good again -----------------------------------


def test_v2_heals_what_the_drift_took(loop: DemoResult) -> None:
    comparison, healing = loop.comparison, loop.healing
    assert comparison is not None and healing is not None
    assert comparison.positives >= 20, comparison
    print(f"\npost-drift rows {comparison.rows} ({comparison.positives} fraud): {healing.line()}")
    assert comparison.pr_auc["v2"] >= 2 * comparison.pr_auc["v1"], healing.line()
    assert comparison.recall["v2"] >= max(2 * comparison.recall["v1"], 0.15), healing.line()
    assert healing.pr_auc_share >= PR_AUC_FLOOR, healing.line()
    assert healing.recall_share >= RECALL_FLOOR, healing.line()
    assert healing.healed, healing.line()  # the loop's own verdict agrees
    # quiet afterwards: v2's references are the new regime's, so no drift event about v2
    assert healing.events_after_v2 == 0, [
        e.window for e in loop.events if e.model_version == loop.v2
    ]


def test_v2_was_trained_on_the_new_regime_and_judged_on_it(loop: DemoResult) -> None:
    from driftloop.models import ModelStore

    assert loop.v2 is not None
    stored = ModelStore.from_settings(loop.settings).get(loop.config.model, loop.v2)
    gate = stored.metadata.gate
    assert gate is not None and gate.passed
    assert any("post-change" in reason for reason in gate.reasons), gate.reasons


# -- every part was killed once and the counts still reconcile ------------------------------


def test_every_part_was_killed_once_and_came_back(loop: DemoResult) -> None:
    # each fires at its own moment (the trigger's on the first drift event, which may come
    # before the monitor's, 20 s after the onset)
    assert sorted(f.name for f in loop.faults) == sorted(FAULTS)
    assert all(f.back_at is not None for f in loop.faults), loop.faults
    marks = loop.marks
    by_name = {f.name: f for f in loop.faults}
    assert by_name["monitor"].killed_at > marks["onset"]
    assert by_name["trigger"].killed_at >= marks["detected"]
    assert by_name["sync"].killed_at >= marks["promoted"]
    killed = by_name["replica"]
    live = replicas(loop.settings, loop.config.model)
    assert live and killed.pid not in {int(a["pid"]) for a in live}


def test_counts_reconcile_after_the_kills(loop: DemoResult) -> None:
    c = loop.counts
    assert c.sent > 0
    # The payment system's client retries a refused call; with that, every call answered.
    assert c.predicted_failed == 0 and c.predicted_ok == c.sent
    # Stream service killed mid-batch: every payment checkpointed once, one feature row each.
    assert c.sent == c.transactions == c.stream_consumed == c.feature_rows
    # Replica killed under traffic: a retried call may be logged twice (same transaction id,
    # the monitor's label join ignores the copy); logs still in the dead replica's queue are
    # lost — the prediction log is non-blocking by design, so at most one queue's worth.
    # (Without a replica's death every answered call is logged exactly once:
    # tests/integration/test_serving.py::test_every_prediction_reaches_the_predictions_topic.)
    assert c.predictions_distinct <= c.predicted_ok
    assert c.predicted_ok - c.predictions_distinct <= LOST_LOGS_BOUND
    # Monitor killed with an open window: every logged record checkpointed, every
    # prediction in them windowed.
    assert c.records_logged == c.monitor_consumed
    assert c.predictions_logged == c.rows_windowed
    assert 0 < c.rows_in_closed_windows <= c.rows_windowed


# -- what a person reads afterwards ---------------------------------------------------------


def test_the_summary_and_the_report_say_what_happened(loop: DemoResult, tmp_path) -> None:
    lines = summary_lines(loop)
    assert loop.healing is not None
    verdict = " and healed" if loop.healing.healed else ", NOT healed"
    assert f"the loop closed{verdict}" in lines[1], lines[1]
    text = "\n".join(lines)
    assert loop.v1 in text and loop.v2 is not None and loop.v2 in text
    assert "healing" in text and "SIGKILL" in text and "onset → v2" in text
    page = write_report(loop, tmp_path / "report")
    html = page.read_text()
    assert loop.v2 in html
    pngs = sorted(p.name for p in page.parent.glob("*.png"))
    assert len(pngs) >= 3, pngs
    assert all((page.parent / name).stat().st_size > 1000 for name in pngs)


def test_every_data_window_is_checked_for_training_serving_skew(loop: DemoResult) -> None:
    """The monitor compared each data window's sampled predictions with the offline
    point-in-time features of the same payments, and the summary says what it found
    (which features, if any, the pipeline served differently from what training reads)."""
    from driftloop.drift import AuditStore

    records = AuditStore(loop.settings.state_dir / "monitor", loop.config.model).records("data")
    tested = [r for r in records if r.verdict in ("drift", "no_drift")]
    checked = [r for r in tested if r.skew is not None]
    # a window is checked settle_s after it closes: the last ones may close after the loop
    assert tested and len(checked) >= len(tested) // 2, (len(tested), len(checked))
    for record in checked:
        assert record.skew is not None and record.skew.error is None, record.skew
        # most sampled payments were found in the stream's transactions and compared
        assert record.skew.compared >= 0.8 * record.skew.sampled > 0, record.skew
    skew = loop.skew
    print(f"\nskew: {skew}")
    assert f"{len([r for r in checked if r.skew and r.skew.compared])} windows checked" in skew
    assert f"  skew            {skew}" in summary_lines(loop)


def test_the_cli_reads_the_demos_state_after_sourcing_its_environment(loop: DemoResult) -> None:
    """The summary points at `driftloop.env`; with it sourced, `driftloop runs` lists this
    loop's runs, not those of `.driftloop/` (a new user's first question after the demo)."""
    assert loop.environment is not None and loop.environment.parent == loop.root
    assert f"source {loop.environment}" in "\n".join(summary_lines(loop))
    written = loop.environment.read_text()
    assert "GITHUB_TOKEN" not in written and "ARGO_TOKEN" not in written  # no secret
    cli = Path(sys.executable).parent / "driftloop"
    listed = subprocess.run(
        ["bash", "-c", 'source "$1" && "$2" runs --json', "-", str(loop.environment), str(cli)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("DRIFTLOOP_")},
    )
    ids = {r["run_id"] for r in json.loads(listed.stdout) if "run_id" in r}
    assert {r.run_id for r in loop.runs} <= ids, (ids, listed.stderr[-500:])
