"""The demo with ``--shadow``: the retraining run declares its challenger as the shadow
(a commit to ``retrain.yaml`` asks for it, as a user would), the monitor judges it against
the champion on live labelled traffic, and the trigger promotes or removes it by a commit.

What git says is followed commit by commit (the shadow's commit, then the verdict's), and
the champion and the shadow are set side by side on the payments both scored whose labels
arrived: the report's plot of them, per window of labelled pairs and over all so far."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pandas as pd

from driftloop.events import DriftEvent
from driftloop.gitops import Git, declared, declared_shadow
from driftloop.settings import Settings

PROMOTE_AS = re.compile(r"^promote_as:[ \t]*[^\s#]*", re.MULTILINE)


def shadow_policy(text: str) -> str:
    """``retrain.yaml``'s text asking for ``promote_as: shadow``, its comments kept."""
    import yaml

    if PROMOTE_AS.search(text):
        changed = PROMOTE_AS.sub("promote_as: shadow", text, count=1)
    else:
        changed = text.rstrip("\n") + "\npromote_as: shadow\n"
    if (yaml.safe_load(changed) or {}).get("promote_as") != "shadow":
        raise ValueError("retrain.yaml does not read promote_as: shadow after the edit")
    return changed


def commit_shadow_policy(settings: Settings, model: str) -> str:
    """Commit ``promote_as: shadow`` to the model's ``retrain.yaml`` on the deployment
    repository's branch (its checkout); returns the commit."""
    repo = Path(settings.git_repo)
    path = settings.deploy_dir / "apps" / model / "retrain.yaml"
    path.write_text(shadow_policy(path.read_text()))
    git = Git(repo)
    git.run("add", str(path.relative_to(repo)))
    git.run(
        "commit",
        "--quiet",
        "-m",
        f"retrain.yaml: {model}'s retraining runs declare a challenger that passes the gate "
        "as the shadow (promote_as: shadow)\n\nThe serving version keeps answering; the "
        "shadow is scored beside it on every request, and the monitor's shadow verdict on "
        "live labelled traffic promotes it or removes it (monitor.yaml shadow:).",
    )
    return git.rev("HEAD")


Outcome = Literal["promoted", "removed"]


@dataclass
class ShadowTrail:
    """The shadow's way through git and the drift topic, as the demo saw it."""

    shadow_commit: str | None = None
    shadow_message: str = ""
    version: str | None = None  # the shadow version declared
    verdict: DriftEvent | None = None  # the monitor's shadow_verdict event
    verdict_commit: str | None = None  # the commit that promoted or removed the shadow
    verdict_message: str = ""
    outcome: Outcome | None = None

    def follow(self, git: Git, base: str, head: str, serve_path: str, model: str) -> None:
        """Read the commits from ``base`` to ``head`` for the shadow's commit and the
        verdict's: the first that declares a shadow, the first after it that does not."""
        if self.verdict_commit is not None or head == base:
            return
        commits = git.run("rev-list", "--reverse", f"{base}..{head}").split()
        for commit in commits:
            text = git.show(commit, serve_path) or ""
            shadow_uri, _ = declared_shadow(text, model)
            if self.shadow_commit is None:
                if shadow_uri:
                    self.shadow_commit = commit
                    self.version = _version(shadow_uri)
                    self.shadow_message = git.run("log", "-1", "--format=%B", commit).strip()
                continue
            if commit == self.shadow_commit or shadow_uri:
                continue
            serving_uri, _ = declared(text, model)
            self.verdict_commit = commit
            self.verdict_message = git.run("log", "-1", "--format=%B", commit).strip()
            promoted = serving_uri is not None and _version(serving_uri) == self.version
            self.outcome = "promoted" if promoted else "removed"
            return


def _version(uri: str) -> str:
    return uri.rstrip("/").rsplit("/", 1)[-1]


def paired(frame: pd.DataFrame, shadow: str) -> pd.DataFrame:
    """The labelled payments both the serving version and ``shadow`` (in shadow) scored:
    one row each, in the order they were scored, with both scores and decisions."""
    if frame is None or not len(frame) or "role" not in frame:
        return pd.DataFrame(
            columns=["transaction_id", "scored_at", "is_fraud", "serving_version",
                     "score_serving", "decision_serving", "score_shadow", "decision_shadow"]
        )  # fmt: skip
    labelled = frame[frame["is_fraud"].notna()]
    cols = ["transaction_id", "scored_at", "model_version", "score", "decision", "is_fraud"]
    serving = labelled[labelled["role"] == "serving"][cols].drop_duplicates("transaction_id")
    scored = labelled[(labelled["role"] == "shadow") & (labelled["model_version"] == shadow)]
    shadow_rows = scored[["transaction_id", "score", "decision"]].drop_duplicates("transaction_id")
    both = serving.merge(shadow_rows, on="transaction_id", suffixes=("_serving", "_shadow"))
    both = both.rename(columns={"model_version": "serving_version"})
    both["is_fraud"] = both["is_fraud"].astype(bool)
    return both.sort_values(["scored_at", "transaction_id"], kind="stable").reset_index(drop=True)


def shadow_windows(pairs: pd.DataFrame, size: int) -> pd.DataFrame:
    """Per window of ``size`` consecutive labelled pairs (the last one may be shorter, not
    under half of ``size``): rows, frauds, and each version's PR-AUC and recall at its own
    threshold in the window (NaN without both classes) and over every pair so far — what
    the monitor's verdict is judged on."""
    from sklearn.metrics import average_precision_score  # type: ignore[import-untyped]

    def pr_auc(y: pd.Series, s: pd.Series) -> float:
        return float(average_precision_score(y, s)) if 0 < y.sum() < len(y) else float("nan")

    def recall(y: pd.Series, d: pd.Series) -> float:
        return float(d[y].astype(bool).mean()) if y.sum() else float("nan")

    out = []
    for start in range(0, len(pairs), size):
        window = pairs.iloc[start : start + size]
        if len(window) < max(1, size // 2) and start:
            break
        upto = pairs.iloc[: start + len(window)]
        y, y_all = window["is_fraud"], upto["is_fraud"]
        out.append(
            {
                "pairs": start + len(window),
                "rows": len(window),
                "positives": int(y.sum()),
                "end": window["scored_at"].iloc[-1],
                **{
                    f"{metric}_{side}{suffix}": fn(yy, part[f"{column}_{side}"])
                    for side in ("serving", "shadow")
                    for metric, column, fn in (
                        ("pr_auc", "score", pr_auc),
                        ("recall", "decision", recall),
                    )
                    for suffix, yy, part in (("", y, window), ("_so_far", y_all, upto))
                },
            }
        )
    return pd.DataFrame(out)
