"""Detection on the simulator, end to end: simulator history → Feast features → a stored
model's scores → Prediction and Label records on Kafka → the monitor process → events.

Small on purpose (500-row windows, three days after the onset); bench/monitor.py measures
the shipped policy on longer runs, and the figures these tests used to print — detection
delay per scenario in predictions after the onset, events on a quiet stream — are its
``<scenario>.delay_<kind>`` and ``no-drift`` results."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from driftloop.drift import AuditStore
from driftloop.models import ModelStore
from tests.integration import monitor_support as ms

# about 3x what it needs: the first test builds the harness (~60 s) and runs the monitor (~45 s)
pytestmark = pytest.mark.timeout(300)

WORLD = ms.World(days=13, tx_per_day=2500)
ONSET = 10  # days after the start; training uses days 7-9, monitoring days 9-13


@pytest.fixture(scope="module")
def harness(base_settings, tmp_path_factory):
    root = tmp_path_factory.mktemp("quality")
    since = WORLD.day(ONSET)
    parts = {"base": (ms.history(WORLD), WORLD.day(7))}
    for name in ("covariate-shift", "concept-drift"):
        parts[name.split("-")[0]] = (ms.history(WORLD, name, ONSET), since)
    frames = ms.featurize(base_settings, root / "feast", parts)
    base = frames["base"]
    store = ModelStore(str(root / "models"))
    model = ms.train_and_store(base[base["event_timestamp"] < WORLD.day(9)], store)
    quiet = base[(base["event_timestamp"] >= WORLD.day(9)) & (base["event_timestamp"] < since)]
    frames["quiet"] = base[base["event_timestamp"] >= WORLD.day(9)].reset_index(drop=True)
    return root, store, model, quiet, frames


def _run(own_topics, harness, scenario: str, tmp_path, **policy):
    _, store, model, quiet, frames = harness
    settings = own_topics.model_copy(update={"model_store_uri": store.uri})
    frame = frames["quiet"] if scenario == "quiet" else pd.concat([quiet, frames[scenario]])
    preds = ms.predictions(model, frame)
    ms.publish(settings, [*preds, *ms.labels(frame)])
    ms.policy_file(tmp_path / "monitor.yaml", **policy)
    ms.run_monitor(ms.monitor_env(settings, tmp_path / "state", tmp_path / "monitor.yaml"))
    return preds, ms.drift_events(settings)


def test_covariate_shift_is_detected_after_the_onset_and_not_before(own_topics, harness, tmp_path):
    onset = WORLD.day(ONSET)
    _, events = _run(
        own_topics,
        harness,
        "covariate",
        tmp_path,
        window={"rows": 500, "min_rows": 200, "duration_s": None},
        performance={"enabled": False},
    )
    drift = sorted((e for e in events if e.kind == "data_drift"), key=lambda e: e.window.end)
    assert drift, "the covariate shift went unnoticed"
    assert all(e.window.end > onset for e in drift), [e.window for e in drift]
    # One drifted column makes an event, so the first may name only the score the shift
    # moved; the events together must name the shifted amounts.
    drifted = {c.column for e in drift for c in e.columns if c.category == "DRIFT"}
    assert any(name.startswith("amount") for name in drifted), drifted


def test_concept_drift_shows_in_performance_from_labels(own_topics, harness, tmp_path):
    onset = WORLD.day(ONSET)
    _, _, model, _, _ = harness
    _, events = _run(
        own_topics,
        harness,
        "concept",
        tmp_path,
        window={"rows": 500, "min_rows": 200, "duration_s": None},
        performance={"labels": 1000, "step": 500, "min_positives": 10, "consecutive_windows": 1},
    )
    degraded = sorted(
        (e for e in events if e.kind == "performance_degraded"), key=lambda e: e.window.end
    )
    assert degraded, "the concept drift went unnoticed"
    assert all(e.window.end > onset for e in degraded)
    reference = model.metadata.metrics
    # mimicry fraud looks like the cardholder: the model misses it, its ranking suffers
    assert (
        min(e.metrics["recall_at_threshold"] for e in degraded)
        < reference["recall_at_threshold"] / 2
    )
    assert min(e.metrics["roc_auc"] for e in degraded) < reference["roc_auc"] - 0.05
    # each event's drop is significant, against the holdout's own error too
    significance = [
        min(e.metrics["p_roc_auc"], e.metrics["p_recall_at_threshold"]) for e in degraded
    ]
    assert max(significance) < 0.01, significance


# Evaluations of 1000 labels (about 20 frauds) every 1000 labels, one degraded evaluation
# enough: a setting where a drop alone would fire on noise.
SMALL_EVALUATIONS = {"labels": 1000, "step": 1000, "min_positives": 10, "consecutive_windows": 1}


def test_a_quiet_stream_raises_no_performance_event_and_each_verdict_shows_its_test(
    own_topics, harness, tmp_path
):
    preds, events = _run(
        own_topics,
        harness,
        "quiet",
        tmp_path,
        window={"rows": 500, "min_rows": 200, "duration_s": None},
        performance=SMALL_EVALUATIONS,
    )
    assert not [e for e in events if e.kind == "performance_degraded"], [
        (e.window, e.metrics) for e in events
    ]
    judged = [
        r
        for r in AuditStore(tmp_path / "state" / "monitor", "fraud").records("performance")
        if r.verdict in ("ok", "degraded")
    ]
    assert len(judged) >= 5, f"only {len(judged)} evaluations of {len(preds)} predictions"
    for record in judged:
        m = record.metrics
        for metric in ("roc_auc", "recall_at_threshold"):
            drop, se, p = m[f"drop_{metric}"], m[f"se_{metric}"], m[f"p_{metric}"]
            assert drop == pytest.approx(m[f"reference_{metric}"] - m[metric])
            one_sided = 0.5 * math.erfc(drop / se / math.sqrt(2))
            assert one_sided <= p <= min(1.0, 2 * one_sided) + 1e-12  # Holm over two metrics
