"""The gate a challenger passes before it may be promoted: better than the trivial
baseline, not worse than the champion on the same holdout, and judged on enough positives.

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
) -> GateResult:
    """The verdict on ``challenger``'s holdout metrics.

    ``champion``: the serving model's metrics on the *same* holdout, or ``None`` when
    there is no champion (the first model) — then only the absolute checks apply.
    ``champion_error``: why a named champion could not be scored (the gate then fails:
    a comparison that was asked for and not made is not a pass)."""
    reasons: list[str] = []
    positives = challenger.get("positives", 0.0)
    reasons.append(
        _check(
            positives >= spec.min_holdout_positives,
            f"holdout positives {positives:.0f} >= {spec.min_holdout_positives}",
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
        reasons.append(
            _check(
                gain >= spec.min_pr_auc_lift,
                f"PR-AUC {challenger['pr_auc']:.4f} - {versus} {champion['pr_auc']:.4f} = "
                f"{gain:+.4f} >= {spec.min_pr_auc_lift:+.4f}",
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
    passed = all(reason.startswith("pass") for reason in reasons)
    return GateResult(passed=passed, reasons=reasons, champion_version=champion_version)
