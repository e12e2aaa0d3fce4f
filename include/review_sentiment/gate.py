"""The promotion rule (TFX's "blessing"): pure, no MLflow, so every case is a unit test."""

from __future__ import annotations

import math

# Fewer test reviews than this unseen by both models cannot tell two good models apart: the
# standard error of a ROC AUC near 0.95 on 500 reviews (18% negatives) is about 0.01.
MIN_COMPARISON_REVIEWS = 500


def gate(
    candidate_auc: float,
    champion_auc: float | None,
    floor: float,
    force: bool = False,
    *,
    baseline_auc: float | None = None,
    drift: str | None = None,
    compared_auc: float | None = None,
    comparison_size: int | None = None,
    cannot_compare: str | None = None,
) -> tuple[bool, str]:
    """No label drift, above the floor, better than the linear baseline trained in the same run,
    and no worse than the champion on the test reviews neither model was trained on.

    Args:
        candidate_auc: The candidate's test ROC AUC.
        champion_auc: The current champion's on the comparison set, or None when there is none.
        floor: Lowest test ROC AUC a champion may have.
        force: Promote whatever the scores (recorded as forced).
        baseline_auc: The baseline's test ROC AUC (None: not a bar in this run).
        drift: Why the data drifted, when it did (blocks promotion).
        compared_auc: The candidate's ROC AUC on the comparison set (None: ``candidate_auc``).
        comparison_size: Reviews in the comparison set, for the reason.
        cannot_compare: Why there is a champion but no fair comparison with it (blocks promotion).

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
    if cannot_compare:
        return False, cannot_compare
    mine, metric = (candidate_auc, "test ROC AUC") if compared_auc is None else (compared_auc, "ROC AUC")
    on = f" on the {comparison_size} test reviews neither model was trained on" if comparison_size else ""
    if champion_auc is not None and math.isfinite(champion_auc) and mine < champion_auc:
        return False, f"candidate {metric} {mine:.4f} is worse than the champion's {champion_auc:.4f}{on}"
    beats = f", baseline's {baseline_auc:.4f}" if baseline_auc is not None else ""
    if champion_auc is None or not math.isfinite(champion_auc):
        return (
            True,
            f"no champion score to beat; candidate test ROC AUC {candidate_auc:.4f} >= floor "
            f"{floor:.4f}{beats}",
        )
    if compared_auc is not None:
        return (
            True,
            f"candidate ROC AUC {mine:.4f} >= champion's {champion_auc:.4f}{on}; test ROC AUC "
            f"{candidate_auc:.4f} >= floor {floor:.4f}{beats}",
        )
    return (
        True,
        f"candidate test ROC AUC {candidate_auc:.4f} >= champion's {champion_auc:.4f} and floor "
        f"{floor:.4f}{beats}",
    )
