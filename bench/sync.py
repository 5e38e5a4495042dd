"""The sync service: the time from a commit to the new model answering, with
``driftloop-sync run`` as a process at its shipped interval, against the same swap applied
by hand — one PUT of the live config with the new model through Ray's REST API, no git, no
sync — measured in the same run.

Per commit: the wait for the poll (commit until the pass that applies it sends the PUT,
including that pass's checks), the time from then until the new version answered, and the
apply as the service logs it (PUT until every application RUNNING — polled each second —
and answering with the version). Commits land at different points of the interval (the
pause after the previous swap varies). Ratios: sync's PUT→answer and commit→answer over
the hand PUT→answer.

Deploys application ``fraud`` declaratively on the running Serve and deletes only it at
the end; run it where no other sync service applies configs (``make bench`` does not run
beside the demo)."""

from __future__ import annotations

import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from driftloop_sync import SyncSettings

from bench._common import record
from driftloop.gitops import promote, read_state
from driftloop.kafka import connect_admin, ensure_topics
from driftloop.raycluster import dashboard_request
from driftloop.settings import TOPICS, Settings
from tests.integration import sync_support as sync

PAUSES = (0.5, 2.5, 5.0, 7.5, 9.5)


def by_sync(
    settings: SyncSettings, versions: list[Any], repo: Path, log_path: Path
) -> list[tuple[float, float, float]]:
    """(commit→answer, poll wait, logged apply) per commit, ``driftloop-sync run`` at its
    shipped interval."""
    rows: list[tuple[float, float, float]] = []
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [str(sync.BIN / "driftloop-sync"), "run"], env=sync.process_env(settings),
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            first = versions[0]
            promote(settings, "fraud", first.version, reason="start from v1")
            sync.wait_synced(settings, sync.git(repo, "rev-parse", "main"), process, log_path)
            sync.wait_model(settings, first.version)
            for i, pause in enumerate(PAUSES):
                version = versions[(i + 1) % 2]
                time.sleep(pause)
                committed = time.time()
                done = promote(settings, "fraud", version.version, reason="measure")
                assert done.commit is not None
                interval = settings.sync_interval_s
                sync.wait_model(settings, version.version, timeout_s=interval + 180)
                answered = time.time()
                sync.wait_synced(settings, done.commit, process, log_path)
                state = read_state(settings)
                assert state is not None and state.last_apply is not None
                synced = rf"synced {done.commit[:12]} in ([0-9.]+) s"
                found = re.search(synced, log_path.read_text())
                assert found, log_path.read_text()
                apply = float(found.group(1))
                poll = state.last_apply.timestamp() - apply - committed
                rows.append((answered - committed, poll, apply))
        finally:
            process.terminate()
            process.wait(timeout=60)
    return rows


def by_hand(settings: SyncSettings, versions: list[Any]) -> list[float]:
    """PUT→answer per swap: the live ``fraud`` config with another model, PUT as it is."""
    took = []
    for i in range(len(PAUSES)):
        version = versions[i % 2]  # the sync run ended on versions[1]
        live = dashboard_request(settings, "GET", sync.APPLICATIONS)["applications"]
        config = live["fraud"]["deployed_app_config"]
        user_config = config["deployments"][0]["user_config"]
        user_config["model_uri"] = f"models:/fraud/{version.version}"
        user_config["model_digest"] = version.sha256
        started = time.monotonic()
        dashboard_request(settings, "PUT", sync.APPLICATIONS, {"applications": [config]})
        sync.wait_model(settings, version.version, timeout_s=180)
        took.append(time.monotonic() - started)
    return took


def measure() -> dict[str, Any]:
    """Both ways in one run: the sync service's commits, then the hand PUTs; the figures."""
    tmp = Path(tempfile.mkdtemp(prefix="bench-sync-"))
    base = Settings().model_copy(update={"topic_prefix": f"bench-sync-{uuid.uuid4().hex[:6]}."})
    ensure_topics(base)
    settings: SyncSettings | None = None
    try:
        settings, _, versions, repo = sync.sync_world(base, tmp, (11, 12))
        rows = by_sync(settings, versions, repo, tmp / "sync.log")
        hand = by_hand(settings, versions)
    finally:
        if settings is not None:
            sync.remove_apps(settings, "fraud")
        admin = connect_admin(base)
        admin.delete_topics([base.topic(t) for t in TOPICS])
        admin.close()
        shutil.rmtree(tmp, ignore_errors=True)
    interval = SyncSettings.model_fields["sync_interval_s"].default
    print(f"\ncommit -> new model answering, driftloop-sync run at its {interval:g} s interval:")
    for i, (total, poll, apply) in enumerate(rows, 1):
        print(
            f"  commit {i}: answering after {total:5.2f} s = poll wait {poll:5.2f} s + "
            f"{total - poll:4.2f} s from the PUT; sync confirmed after {apply:.1f} s"
        )
    columns = {
        "commit_to_answer": [r[0] for r in rows],
        "poll_wait": [r[1] for r in rows],
        "put_to_answer": [r[0] - r[1] for r in rows],
        "apply": [r[2] for r in rows],
        "hand_put_to_answer": hand,
    }
    result: dict[str, Any] = {"interval_s": interval, "commits": len(rows)}
    for label, values in columns.items():
        result[f"{label}_median_s"] = statistics.median(values)
        result[f"{label}_max_s"] = max(values)
    baseline = statistics.median(hand)
    result["ratio_put_to_answer_sync_over_hand"] = result["put_to_answer_median_s"] / baseline
    result["ratio_commit_to_answer_over_hand"] = result["commit_to_answer_median_s"] / baseline
    return result


def main() -> None:
    record("sync", measure())


if __name__ == "__main__":
    main()
