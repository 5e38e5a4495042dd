"""The gate a challenger passes before it may be promoted: better than the trivial
baseline, not worse than the champion on the same holdout, judged on enough positives, and
with an operating threshold (a model without one cannot be served).

With a change point the run was started to heal, the verdict rests on the holdout rows
after it: enough positives there to judge at all, a PR-AUC lift over the champion on
them, and no real loss of recall at the operating threshold on them; on the whole
holdout (mostly the old regime) the challenger may trail the champion by a tolerance.

Every check is recorded as a sentence with its numbers, passed or not, so the verdict in
a model card or a promotion commit explains itself.
"""

from __future__ import annotations

from driftloop.models import GateResult
from driftloop.training._spec import GateSpec


def _check(ok: bool, text: str) -> str:
    return f"{'pass' if ok else 'FAIL'}: {text}"


def judge(
    spec: GateSpec,
    challenger: dict[str, float],
    baseline: dict[str, float],
    champion: dict[str, float] | None,
    champion_version: str | None = None,
    champion_error: str | None = None,
    *,
    post_change: dict[str, float] | None = None,
    champion_post_change: dict[str, float] | None = None,
) -> GateResult:
    """The verdict on ``challenger``'s holdout metrics.

    ``champion``: the serving model's metrics on the *same* holdout, or ``None`` when
    there is no champion (the first model) — then only the absolute checks apply.
    ``champion_error``: why a named champion could not be scored (the gate then fails:
    a comparison that was asked for and not made is not a pass).
    ``post_change``: the challenger's metrics on the holdout rows at or after the change
    point, ``None`` when the dataset has none (then the gate is exactly the one without);
    ``champion_post_change``: the champion's on the same rows."""
    reasons: list[str] = []
    positives = challenger.get("positives", 0.0)
    reasons.append(
        _check(
            positives >= spec.min_holdout_positives,
            f"holdout positives {positives:.0f} >= {spec.min_holdout_positives}",
        )
    )
    threshold = challenger.get("threshold")
    reasons.append(
        _check(
            threshold is not None,
            f"an operating threshold: {threshold:.4f}, chosen on the validation rows"
            if threshold is not None
            else "an operating threshold: no score reaches the target precision on the "
            "validation rows, so serving would have no threshold to flag payments at",
        )
    )
    lift = challenger["pr_auc"] - baseline["pr_auc"]
    reasons.append(
        _check(
            lift >= spec.min_pr_auc_over_baseline,
            f"PR-AUC {challenger['pr_auc']:.4f} - baseline {baseline['pr_auc']:.4f} = "
            f"{lift:+.4f} >= {spec.min_pr_auc_over_baseline:+.4f}",
        )
    )
    if champion_error is not None:
        reasons.append(_check(False, f"champion {champion_version} not scored: {champion_error}"))
    elif champion is not None:
        versus = f"champion {champion_version}" if champion_version else "champion"
        gain = challenger["pr_auc"] - champion["pr_auc"]
        floor = spec.min_pr_auc_lift if post_change is None else -spec.max_pr_auc_loss_with_change
        reasons.append(
            _check(
                gain >= floor,
                f"PR-AUC {challenger['pr_auc']:.4f} - {versus} {champion['pr_auc']:.4f} = "
                f"{gain:+.4f} >= {floor:+.4f}",
            )
        )
        worse = challenger["brier"] - champion["brier"]
        reasons.append(
            _check(
                worse <= spec.max_brier_increase,
                f"Brier {challenger['brier']:.4f} - {versus} {champion['brier']:.4f} = "
                f"{worse:+.4f} <= {spec.max_brier_increase:+.4f}",
            )
        )
    else:
        reasons.append("pass: no champion to compare with (first version)")
    if post_change is not None and champion_error is None:
        reasons += _post_change(spec, post_change, champion_post_change, champion_version)
    passed = all(reason.startswith("pass") for reason in reasons)
    return GateResult(passed=passed, reasons=reasons, champion_version=champion_version)


def _post_change(
    spec: GateSpec,
    challenger: dict[str, float],
    champion: dict[str, float] | None,
    champion_version: str | None,
) -> list[str]:
    """The checks on the post-change holdout rows."""
    positives, rows = challenger.get("positives", 0.0), challenger.get("rows", 0.0)
    if positives < spec.min_post_change_positives or "pr_auc" not in challenger:
        return [
            _check(
                False,
                f"post-change holdout too small to judge: {positives:.0f} positives in "
                f"{rows:.0f} rows < {spec.min_post_change_positives}",
            )
        ]
    reasons = [
        _check(
            True,
            f"post-change holdout positives {positives:.0f} in {rows:.0f} rows >= "
            f"{spec.min_post_change_positives}",
        )
    ]
    if champion is None or "pr_auc" not in champion:
        return reasons
    versus = f"champion {champion_version}" if champion_version else "champion"
    gain = challenger["pr_auc"] - champion["pr_auc"]
    reasons.append(
        _check(
            gain >= spec.min_pr_auc_lift,
            f"post-change PR-AUC {challenger['pr_auc']:.4f} - {versus} "
            f"{champion['pr_auc']:.4f} = {gain:+.4f} >= {spec.min_pr_auc_lift:+.4f}",
        )
    )
    ours, theirs = challenger["recall_at_threshold"], champion["recall_at_threshold"]
    reasons.append(
        _check(
            ours - theirs >= -spec.max_post_change_recall_drop,
            f"post-change recall at threshold {ours:.4f} - {versus} {theirs:.4f} = "
            f"{ours - theirs:+.4f} >= {-spec.max_post_change_recall_drop:+.4f}",
        )
    )
    return reasons
