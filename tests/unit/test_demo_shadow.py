"""The demo's --shadow: the option, the retrain.yaml edit a user would commit, the champion
and shadow paired on labelled payments from the prediction log, the windows the report
plots, and the report's shadow part."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import typer
import yaml
from driftloop_demo import cli
from driftloop_demo._config import DemoConfig
from driftloop_demo._evidence import live_figures, scored_frame
from driftloop_demo._loop import DemoResult
from driftloop_demo._report import phases, summary_lines, write_report
from driftloop_demo._shadow import ShadowTrail, paired, shadow_policy, shadow_windows
from driftloop_demo._stage import demo_settings
from sklearn.metrics import average_precision_score  # type: ignore[import-untyped]

from driftloop.events import DriftEvent, Label, MetricComparison, Prediction, ShadowVerdict, Window
from driftloop.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
N = 1100


def _log(seed: int = 5) -> tuple[list[Prediction], list[Label], np.ndarray]:
    """Each payment scored by v1 (serving) and v2 (shadow), v2 the sharper; a third
    version's shadow scores of some payments; every tenth payment without a label."""
    rng = np.random.default_rng(seed)
    y = rng.random(N) < 0.08
    weak = np.clip(rng.normal(0.3 + 0.1 * y, 0.2), 0, 1)
    strong = np.clip(rng.normal(0.2 + 0.6 * y, 0.15), 0, 1)
    predictions: list[Prediction] = []
    for i in range(N):
        t = T0 + timedelta(seconds=10 * i)
        scored = [("v1", weak[i], "serving"), ("v2", strong[i], "shadow")]
        if i % 3 == 0:
            scored.append(("v9", 0.5, "shadow"))
        for version, score, role in reversed(scored) if i % 4 == 0 else scored:
            predictions.append(
                Prediction(
                    request_id=f"r{i}",
                    transaction_id=f"t{i}",
                    model_name="fraud",
                    model_version=version,
                    score=float(score),
                    decision=bool(score >= 0.5),
                    threshold=0.5,
                    latency_ms=1.0,
                    event_time=t,
                    role=role,
                )
            )
    labels = [
        Label(transaction_id=f"t{i}", is_fraud=bool(y[i]), event_time=T0 + timedelta(hours=i))
        for i in range(N)
        if i % 10 != 9
    ]
    return predictions, labels, y


def test_the_option_reaches_the_config() -> None:
    command = typer.main.get_command(cli.app).commands["run"]  # type: ignore[attr-defined]
    assert command.make_context("run", ["--shadow"]).params["shadow"] is True
    assert command.make_context("run", []).params["shadow"] is False
    assert DemoConfig().shadow is False and DemoConfig(shadow=True).shadow is True


def test_the_policy_edit_asks_for_a_shadow_and_keeps_the_rest() -> None:
    shipped = (ROOT / "deploy" / "apps" / "fraud" / "retrain.yaml").read_text()
    edited = shadow_policy(shipped)
    before, after = yaml.safe_load(shipped), yaml.safe_load(edited)
    assert before["promote_as"] == "serving" and after["promote_as"] == "shadow"
    assert {k: v for k, v in after.items() if k != "promote_as"} == {
        k: v for k, v in before.items() if k != "promote_as"
    }
    changed = [a for a, b in zip(shipped.splitlines(), edited.splitlines(), strict=True) if a != b]
    assert changed == ["promote_as: serving"]  # comments and every other line as they were
    assert shadow_policy("promote_as: serving  # why\n") == "promote_as: shadow  # why\n"
    assert yaml.safe_load(shadow_policy("window: 7d\n")) == {
        "window": "7d",
        "promote_as": "shadow",
    }


def test_pairs_are_the_labelled_payments_both_versions_scored() -> None:
    predictions, labels, y = _log()
    frame = scored_frame(predictions, labels)
    pairs = paired(frame, "v2")
    labelled = [i for i in range(N) if i % 10 != 9]
    assert list(pairs["transaction_id"]) == [f"t{i}" for i in labelled]  # scoring order
    assert (pairs["serving_version"] == "v1").all()
    assert pairs["is_fraud"].tolist() == [bool(y[i]) for i in labelled]
    # v9's shadow scores are not v2's; a version nobody shadowed pairs nothing
    assert pairs["score_shadow"].tolist() == [
        p.score
        for p in predictions
        if p.model_version == "v2" and int(p.transaction_id[1:]) % 10 != 9
    ]
    assert paired(frame, "v3").empty
    # a shadow's scores answered nothing: they are not v2's live figures
    assert live_figures(frame, "v2", T0 + timedelta(days=1)) is None
    assert live_figures(frame, "v1", T0 + timedelta(days=1)) is not None


def test_windows_hold_each_versions_figures_on_the_same_payments() -> None:
    predictions, labels, _ = _log()
    pairs = paired(scored_frame(predictions, labels), "v2")  # 990 pairs
    windows = shadow_windows(pairs, 200)
    # 4 windows of 200 and the last 190 (at least half a window)
    assert windows["rows"].tolist() == [200, 200, 200, 200, 190]
    assert windows["pairs"].tolist() == [200, 400, 600, 800, 990]
    second = pairs.iloc[200:400]
    y = second["is_fraud"]
    assert windows["positives"][1] == y.sum()
    assert windows["pr_auc_serving"][1] == pytest.approx(
        average_precision_score(y, second["score_serving"])
    )
    assert windows["pr_auc_shadow"][1] == pytest.approx(
        average_precision_score(y, second["score_shadow"])
    )
    assert windows["recall_shadow"][1] == pytest.approx(second["decision_shadow"][y].mean())
    upto = pairs.iloc[:400]
    assert windows["pr_auc_shadow_so_far"][1] == pytest.approx(
        average_precision_score(upto["is_fraud"], upto["score_shadow"])
    )
    # the sharper shadow is above the champion in every window
    assert (windows["pr_auc_shadow"] > windows["pr_auc_serving"]).all()
    assert (windows["recall_shadow"] > windows["recall_serving"]).all()
    # a short tail under half a window is left out; a window with one class has no PR-AUC
    assert shadow_windows(pairs, 300)["rows"].tolist() == [300, 300, 300]
    one_class = pairs.assign(is_fraud=False)
    assert shadow_windows(one_class, 200)["pr_auc_serving"].isna().all()


def _verdict() -> DriftEvent:
    comparison = MetricComparison(
        metric="pr_auc", serving=0.31, shadow=0.83, standard_error=0.05, p_better=1e-6,
        p_worse=1.0,
    )  # fmt: skip
    shadow = ShadowVerdict(
        version="v2", verdict="better", action="promote", rows=800, positives=64,
        comparisons=[comparison], first_seen=T0, deadline=T0 + timedelta(hours=72),
        reason="significantly above the serving version on pr_auc",
    )  # fmt: skip
    return DriftEvent(
        kind="shadow_verdict", model_name="fraud", model_version="v1",
        window=Window(start=T0, end=T0 + timedelta(hours=3), row_count=800),
        reference_profile="models:/fraud/v1", shadow=shadow,
    )  # fmt: skip


def test_the_report_shows_the_commits_the_verdict_and_the_plot(tmp_path: Path) -> None:
    predictions, labels, _ = _log()
    settings = demo_settings(Settings(serve_auth="off"), tmp_path, "20261205120000")
    apps = settings.deploy_dir / "apps" / "fraud"
    apps.mkdir(parents=True)
    shutil.copy(ROOT / "deploy" / "apps" / "fraud" / "monitor.yaml", apps)
    result = DemoResult(tmp_path, settings, DemoConfig(shadow=True, shadow_window=200))
    result.v1, result.v2 = "v1", "v2"
    result.scores = scored_frame(predictions, labels)
    result.shadow = ShadowTrail(
        shadow_commit="a" * 40, shadow_message="promote: fraud v2 as shadow", version="v2",
        verdict=_verdict(), verdict_commit="b" * 40,
        verdict_message="promote: fraud v2 (live: better)", outcome="promoted",
    )  # fmt: skip
    marks = ("step:promote:start", "shadow_committed", "shadow_synced", "shadow_verdict",
             "promoted", "v2_serving")  # fmt: skip
    result.marks = {m: T0 + timedelta(seconds=10 * i) for i, m in enumerate(marks)}
    page = write_report(result, tmp_path / "report").read_text()
    assert (tmp_path / "report" / "shadow-v1-v2.png").stat().st_size > 0
    assert "shadow-v1-v2.png" in page
    assert "promote: fraud v2 as shadow" in page and "promote: fraud v2 (live: better)" in page
    assert "<b>better</b> → promote" in page and "0.8300" in page and "0.3100" in page
    assert "min_rows 3000, min_positives 40, step 500" in page
    assert "the promotion commit (the record of the live verdict)" in page
    text = "\n".join(summary_lines(result))
    assert "better → promote on 800 labelled pairs (64 fraud)" in text
    assert "promoted by bbbbbbbbbbbb" in text
    times = phases(result)
    assert times["live judgement"] == 10 and times["verdict commit"] == 10
    assert times["shadow commit"] == 10  # the promote step's commit is the shadow's
    assert "promotion" not in times


def test_a_removed_shadow_closes_the_loop_once_the_removal_is_synced(tmp_path: Path) -> None:
    settings = demo_settings(Settings(), tmp_path, "20261205120000")
    result = DemoResult(tmp_path, settings, DemoConfig(shadow=True))
    result.shadow = ShadowTrail(version="v2", verdict_commit="c" * 40, outcome="removed")
    assert not result.closed
    result.marks["synced"] = T0
    assert result.closed and result.v2 is None
    assert not DemoResult(tmp_path, settings, DemoConfig()).closed
