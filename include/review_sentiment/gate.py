"""The promotion rule (TFX's "blessing"): pure, no MLflow, so every case is a unit test.

A :class:`GatePolicy` says what a candidate must meet (set per run: the DAG's Params, the CLI's
flags); :class:`GateFacts` are the figures ``register`` gathered; :func:`gate` weighs the one
against the other.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

from review_sentiment.config import DEFAULT_NONINFERIORITY_MARGIN, DEFAULT_PROMOTION_FLOOR
from review_sentiment.uncertainty import Interval

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
        margin: Non-inferiority margin: the candidate passes the champion comparison when the lower
            bound of its candidate - champion ROC AUC interval is above ``-margin``.

    Raises:
        ValueError: a margin that is negative or not finite.
    """

    floor: float = DEFAULT_PROMOTION_FLOOR
    beat_baseline: bool = True
    force: bool = False
    margin: float = DEFAULT_NONINFERIORITY_MARGIN

    def __post_init__(self) -> None:
        if not (math.isfinite(self.margin) and self.margin >= 0):
            raise ValueError(f"the non-inferiority margin must be a finite number >= 0, got {self.margin!r}")


@dataclass(frozen=True)
class GateFacts:
    """The figures the gate weighs, in the order it weighs them.

    Attributes:
        candidate_auc: The candidate's test ROC AUC.
        baseline_auc: The baseline's test ROC AUC (None: no baseline in this run).
        cannot_compare: Why there is a champion but no fair comparison with it (blocks promotion;
            "": none needed, or a fair one was made).
        champion_auc: The current champion's on the comparison set, or None when there is none.
        compared_auc: The candidate's ROC AUC on the comparison set (None: ``candidate_auc``).
        comparison_size: Reviews in the comparison set, for the reason.
        auc_difference: The candidate - champion ROC AUC interval on the comparison set (None: no
            interval, e.g. figures from before intervals: the point estimates are compared).
    """

    candidate_auc: float
    baseline_auc: float | None = None
    cannot_compare: str = ""
    champion_auc: float | None = None
    compared_auc: float | None = None
    comparison_size: int | None = None
    auc_difference: Interval | None = None


class Verdict(NamedTuple):
    """Whether to promote, and the reason in words."""

    passed: bool
    reason: str


def gate(facts: GateFacts, policy: GatePolicy) -> Verdict:
    """Above the floor, better than the linear baseline trained in the same run (when the policy
    asks), and no worse than the champion on the test reviews neither model was trained on. The
    scores only: drift of the data (``drift.py``) is recorded beside the verdict and routes the
    week (to the approval, or keeping the champion), it does not refuse.

    Args:
        facts: The candidate's, the baseline's and the champion's figures.
        policy: The floor, the baseline bar and whether to force.

    Returns:
        The verdict and its reason.
    """
    if policy.force:
        return Verdict(True, "force-promoted by request, gate skipped")
    baseline_auc = facts.baseline_auc if policy.beat_baseline else None
    refusal = _refusal(facts, policy.floor, baseline_auc) or champion_refusal(facts, policy.margin)
    if refusal is not None:
        return Verdict(False, refusal)
    return Verdict(True, _approval(facts, policy, baseline_auc))


def versus_champion(facts: GateFacts, margin: float) -> Verdict:
    """The champion rule alone, with its reason either way (promote's re-check under the lock,
    when the champion moved after the candidate's comparison)."""
    refusal = champion_refusal(facts, margin)
    if refusal is not None:
        return Verdict(False, refusal)
    if facts.auc_difference is None:
        mine, metric = _compared(facts)
        return Verdict(True, f"candidate {metric} {mine:.4f} is no worse than the champion's{_on(facts)}")
    return Verdict(True, f"{_interval(facts, facts.auc_difference)}: {_noninferior(margin)}")


def champion_refusal(facts: GateFacts, margin: float) -> str | None:
    """Why the candidate loses to the champion on the comparison set, or None: with an interval,
    unless its lower bound is above ``-margin`` (non-inferiority); without one, if its point
    estimate is worse. Also promote's re-check when the champion moved meanwhile.
    """
    champion_auc, interval = facts.champion_auc, facts.auc_difference
    if champion_auc is None or not math.isfinite(champion_auc):
        return None
    if interval is not None:
        if interval.low > -margin:
            return None
        return (
            f"{_interval(facts, interval)}: not shown non-inferior (lower bound {interval.low:+.4f} "
            f"is not above {_bar(margin)})"
        )
    mine, metric = _compared(facts)
    if mine < champion_auc:
        return f"candidate {metric} {mine:.4f} is worse than the champion's {champion_auc:.4f}{_on(facts)}"
    return None


def _refusal(facts: GateFacts, floor: float, baseline_auc: float | None) -> str | None:
    """Why the candidate is refused, checked in order; None if it is not."""
    candidate_auc = facts.candidate_auc
    if not math.isfinite(candidate_auc):
        return "candidate test ROC AUC is not finite (diverged model)"
    if candidate_auc < floor:
        return f"candidate test ROC AUC {candidate_auc:.4f} is below the floor {floor:.4f}"
    if baseline_auc is not None and math.isfinite(baseline_auc) and candidate_auc <= baseline_auc:
        return (
            f"candidate test ROC AUC {candidate_auc:.4f} does not beat the TF-IDF + logistic regression "
            f"baseline's {baseline_auc:.4f}"
        )
    if facts.cannot_compare:
        return facts.cannot_compare
    return None


def _approval(facts: GateFacts, policy: GatePolicy, baseline_auc: float | None) -> str:
    """The reason of a passed gate: each bar the candidate met, with both figures."""
    candidate_auc, champion_auc, floor = facts.candidate_auc, facts.champion_auc, policy.floor
    beats = f", baseline's {baseline_auc:.4f}" if baseline_auc is not None else ""
    if champion_auc is None or not math.isfinite(champion_auc):
        return (
            f"no champion score to beat; candidate test ROC AUC {candidate_auc:.4f} >= floor "
            f"{floor:.4f}{beats}"
        )
    if facts.auc_difference is not None:
        return (
            f"{_interval(facts, facts.auc_difference)}: {_noninferior(policy.margin)}; "
            f"test ROC AUC {candidate_auc:.4f} >= floor {floor:.4f}{beats}"
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


def _interval(facts: GateFacts, interval: Interval) -> str:
    """E.g. ``candidate - champion ROC AUC +0.0031 [95% CI -0.0012, +0.0075] on 2,085 unseen
    test reviews``."""
    size = f" on {facts.comparison_size:,} unseen test reviews" if facts.comparison_size else ""
    return interval.words() + size


def _noninferior(margin: float) -> str:
    return f"non-inferior (lower bound above {_bar(margin)})"


def _bar(margin: float) -> str:
    """The bar the lower bound must clear, e.g. ``-0.002``."""
    return f"{-margin:g}" if margin else "0"
