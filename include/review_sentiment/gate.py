"""The promotion rule (TFX's "blessing"): pure, no MLflow, so every case is a unit test.

A :class:`GatePolicy` says what a candidate must meet (set per run: the DAG's Params, the CLI's
flags); :class:`GateFacts` are the figures ``register`` gathered; :func:`gate` weighs the one
against the other.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

from review_sentiment.config import DEFAULT_PROMOTION_FLOOR

# Fewer test reviews than this unseen by both models cannot tell two good models apart: the
# standard error of a ROC AUC near 0.95 on 500 reviews (18% negatives) is about 0.01.
MIN_COMPARISON_REVIEWS = 500


@dataclass(frozen=True)
class GatePolicy:
    """What a candidate must meet to become champion.

    Attributes:
        floor: Lowest test ROC AUC a champion may have.
        beat_baseline: Require the candidate to beat the linear baseline trained in the same run
            (off for quick plumbing runs whose tiny models cannot; the baseline's scores are
            recorded either way).
        force: Pass whatever the scores (recorded as forced).
    """

    floor: float = DEFAULT_PROMOTION_FLOOR
    beat_baseline: bool = True
    force: bool = False


@dataclass(frozen=True)
class GateFacts:
    """The figures the gate weighs, in the order it weighs them.

    Attributes:
        candidate_auc: The candidate's test ROC AUC.
        drift: Why the data drifted, when it did (blocks promotion; "": no drift).
        baseline_auc: The baseline's test ROC AUC (None: no baseline in this run).
        cannot_compare: Why there is a champion but no fair comparison with it (blocks promotion;
            "": none needed, or a fair one was made).
        champion_auc: The current champion's on the comparison set, or None when there is none.
        compared_auc: The candidate's ROC AUC on the comparison set (None: ``candidate_auc``).
        comparison_size: Reviews in the comparison set, for the reason.
    """

    candidate_auc: float
    drift: str = ""
    baseline_auc: float | None = None
    cannot_compare: str = ""
    champion_auc: float | None = None
    compared_auc: float | None = None
    comparison_size: int | None = None


class Verdict(NamedTuple):
    """Whether to promote, and the reason in words."""

    passed: bool
    reason: str


def gate(facts: GateFacts, policy: GatePolicy) -> Verdict:
    """No label drift, above the floor, better than the linear baseline trained in the same run
    (when the policy asks), and no worse than the champion on the test reviews neither model was
    trained on.

    Args:
        facts: The candidate's, the baseline's and the champion's figures.
        policy: The floor, the baseline bar and whether to force.

    Returns:
        The verdict and its reason.
    """
    if policy.force:
        return Verdict(True, "force-promoted by request, gate skipped")
    baseline_auc = facts.baseline_auc if policy.beat_baseline else None
    refusal = _refusal(facts, policy.floor, baseline_auc)
    if refusal is not None:
        return Verdict(False, refusal)
    return Verdict(True, _approval(facts, policy.floor, baseline_auc))


def _refusal(facts: GateFacts, floor: float, baseline_auc: float | None) -> str | None:
    """Why the candidate is refused, checked in order (drift before scores); None if it is not."""
    candidate_auc = facts.candidate_auc
    if not math.isfinite(candidate_auc):
        return "candidate test ROC AUC is not finite (diverged model)"
    if facts.drift:
        return f"label drift blocks promotion: {facts.drift}"
    if candidate_auc < floor:
        return f"candidate test ROC AUC {candidate_auc:.4f} is below the floor {floor:.4f}"
    if baseline_auc is not None and math.isfinite(baseline_auc) and candidate_auc <= baseline_auc:
        return (
            f"candidate test ROC AUC {candidate_auc:.4f} does not beat the TF-IDF + logistic regression "
            f"baseline's {baseline_auc:.4f}"
        )
    if facts.cannot_compare:
        return facts.cannot_compare
    champion_auc = facts.champion_auc
    if champion_auc is not None and math.isfinite(champion_auc):
        mine, metric = _compared(facts)
        if mine < champion_auc:
            return (
                f"candidate {metric} {mine:.4f} is worse than the champion's {champion_auc:.4f}{_on(facts)}"
            )
    return None


def _approval(facts: GateFacts, floor: float, baseline_auc: float | None) -> str:
    """The reason of a passed gate: each bar the candidate met, with both figures."""
    candidate_auc, champion_auc = facts.candidate_auc, facts.champion_auc
    beats = f", baseline's {baseline_auc:.4f}" if baseline_auc is not None else ""
    if champion_auc is None or not math.isfinite(champion_auc):
        return (
            f"no champion score to beat; candidate test ROC AUC {candidate_auc:.4f} >= floor "
            f"{floor:.4f}{beats}"
        )
    if facts.compared_auc is not None:
        return (
            f"candidate ROC AUC {facts.compared_auc:.4f} >= champion's {champion_auc:.4f}{_on(facts)}; "
            f"test ROC AUC {candidate_auc:.4f} >= floor {floor:.4f}{beats}"
        )
    return (
        f"candidate test ROC AUC {candidate_auc:.4f} >= champion's {champion_auc:.4f} and floor "
        f"{floor:.4f}{beats}"
    )


def _compared(facts: GateFacts) -> tuple[float, str]:
    """The candidate's score set against the champion's, and its name in the reason."""
    if facts.compared_auc is None:
        return facts.candidate_auc, "test ROC AUC"
    return facts.compared_auc, "ROC AUC"


def _on(facts: GateFacts) -> str:
    """Where the two were compared, for the reason ("" when the size is unknown)."""
    if not facts.comparison_size:
        return ""
    return f" on the {facts.comparison_size} test reviews neither model was trained on"
