"""The promotion rule (TFX's "blessing"): pure, no MLflow, so every case is a unit test."""

from __future__ import annotations

import math


def gate(
    candidate_auc: float,
    champion_auc: float | None,
    floor: float,
    force: bool = False,
    *,
    baseline_auc: float | None = None,
    drift: str | None = None,
) -> tuple[bool, str]:
    """No label drift, above the floor, better than the linear baseline trained in the same run,
    and no worse than the champion, all on the same test split.

    Args:
        candidate_auc: The candidate's test ROC AUC.
        champion_auc: The current champion's, or None when there is none.
        floor: Lowest test ROC AUC a champion may have.
        force: Promote whatever the scores (recorded as forced).
        baseline_auc: The baseline's test ROC AUC (None: not a bar in this run).
        drift: Why the data drifted, when it did (blocks promotion).

    Returns:
        Whether to promote, and the reason in words.
    """
    if force:
        return True, "force-promoted by request, gate skipped"
    if not math.isfinite(candidate_auc):
        return False, "candidate test ROC AUC is not finite (diverged model)"
    if drift:
        return False, f"label drift blocks promotion: {drift}"
    if candidate_auc < floor:
        return False, f"candidate test ROC AUC {candidate_auc:.4f} is below the floor {floor:.4f}"
    if baseline_auc is not None and math.isfinite(baseline_auc) and candidate_auc <= baseline_auc:
        return False, (
            f"candidate test ROC AUC {candidate_auc:.4f} does not beat the TF-IDF + logistic regression "
            f"baseline's {baseline_auc:.4f}"
        )
    if champion_auc is not None and math.isfinite(champion_auc) and candidate_auc < champion_auc:
        return False, (
            f"candidate test ROC AUC {candidate_auc:.4f} is worse than the champion's {champion_auc:.4f}"
        )
    beats = f", baseline's {baseline_auc:.4f}" if baseline_auc is not None else ""
    if champion_auc is None or not math.isfinite(champion_auc):
        return (
            True,
            f"no champion score to beat; candidate test ROC AUC {candidate_auc:.4f} >= floor "
            f"{floor:.4f}{beats}",
        )
    return (
        True,
        f"candidate test ROC AUC {candidate_auc:.4f} >= champion's {champion_auc:.4f} and floor "
        f"{floor:.4f}{beats}",
    )
