"""A model's probabilities as a distribution in fixed bins, and the population stability index
(PSI) of one such distribution against another. Pure: numpy only, no MLflow.

The bins are the deciles of the reference (the champion's probabilities on its test split, fixed
at registration): each holds a tenth of the reference, so a shift anywhere in the range shows,
where equal-width bins on [0, 1] would leave the middle bins of a confident model nearly empty
and blind. Equal deciles (a model with few distinct outputs) merge into one bin. A bin is
``[lower edge, upper edge)`` and the outer bins are open, so every probability falls in exactly
one bin.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from review_sentiment.config import DEFAULT_PSI_BINS

# Floor of a bin's fraction in the PSI: an empty bin would make ln(a / e) infinite. 1e-4 (one
# review in 10,000) keeps one emptied decile worth about 0.7 of PSI: alarming, yet finite.
PSI_EPSILON = 1e-4
REFERENCE_FORMAT = 1


@dataclass(frozen=True)
class Summary:
    """A set of probabilities as the prediction series records them."""

    count: int
    mean_probability: float | None  # None when nothing was scored
    share_not_recommended: float | None  # below the threshold: labelled 0


@dataclass(frozen=True)
class Reference:
    """The distribution every later scoring run is compared with: inner bin edges (ascending,
    distinct), the fraction of the reference in each of the ``len(edges) + 1`` bins, and its
    summary at the version's ``threshold``."""

    edges: tuple[float, ...]
    fractions: tuple[float, ...]
    summary: Summary
    threshold: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": REFERENCE_FORMAT,
            "edges": list(self.edges),
            "fractions": list(self.fractions),
            "count": self.summary.count,
            "mean_probability": self.summary.mean_probability,
            "share_not_recommended": self.summary.share_not_recommended,
            "threshold": self.threshold,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Reference:
        """Read back what :meth:`to_dict` wrote.

        Raises:
            ValueError: the record is not a reference this code can read (format, bins).
        """
        if data.get("format") != REFERENCE_FORMAT:
            raise ValueError(f"reference format {data.get('format')!r}; this code reads {REFERENCE_FORMAT}")
        edges = tuple(float(e) for e in data["edges"])
        fractions = tuple(float(f) for f in data["fractions"])
        if len(fractions) != len(edges) + 1 or list(edges) != sorted(set(edges)):
            raise ValueError(f"a reference needs ascending edges and one more fraction: {data}")
        summary = Summary(int(data["count"]), data["mean_probability"], data["share_not_recommended"])
        return cls(edges, fractions, summary, float(data["threshold"]))


def summarise(probability: Any, threshold: float) -> Summary:
    """Count, mean and share labelled not-recommended (below ``threshold``) of ``probability``."""
    import numpy as np

    p = np.asarray(probability, dtype=np.float64).reshape(-1)
    if p.size == 0:
        return Summary(0, None, None)
    return Summary(int(p.size), float(p.mean()), float((p < threshold).mean()))


def check_probabilities(probability: Any) -> Any:
    """``probability`` as a flat float array.

    Raises:
        ValueError: a value is not a finite number in [0, 1] (a broken model, not a shift).
    """
    import numpy as np

    p = np.asarray(probability, dtype=np.float64).reshape(-1)
    bad = ~np.isfinite(p) | (p < 0) | (p > 1)
    if bad.any():
        raise ValueError(
            f"{int(bad.sum())} probabilities are not finite numbers in [0, 1], e.g. {p[bad][:3]}"
        )
    return p


def decile_edges(probability: Any, bins: int = DEFAULT_PSI_BINS) -> tuple[float, ...]:
    """The inner edges of ``bins`` equal-count bins of ``probability`` (its quantiles), without
    repeats: fewer bins when deciles coincide.

    Raises:
        ValueError: no probabilities, or fewer than two bins asked for.
    """
    import numpy as np

    p = check_probabilities(probability)
    if p.size == 0 or bins < 2:
        raise ValueError(f"bins need probabilities and at least two bins (got {p.size} values, {bins} bins)")
    # Deciles that are values of p (no edge between two outputs of a model with few), and none
    # at its minimum: the bin below that edge would hold nothing of the reference.
    inner = np.unique(np.quantile(p, np.linspace(0.0, 1.0, bins + 1)[1:-1], method="inverted_cdf"))
    return tuple(float(e) for e in inner if e > p.min())


def bin_fractions(probability: Any, edges: Sequence[float]) -> tuple[float, ...]:
    """The fraction of ``probability`` in each bin: ``(-inf, e0), [e0, e1), ..., [e_last, inf)``;
    all zeros when there is none."""
    import numpy as np

    p = check_probabilities(probability)
    counts = np.bincount(np.searchsorted(np.asarray(edges, dtype=np.float64), p, side="right"),
                         minlength=len(edges) + 1)  # fmt: skip
    return tuple(float(c) for c in (counts / p.size if p.size else counts.astype(float)))


def reference_of(probability: Any, threshold: float, bins: int = DEFAULT_PSI_BINS) -> Reference:
    """The reference distribution of ``probability`` (a version's test-split scores)."""
    edges = decile_edges(probability, bins)
    return Reference(edges, bin_fractions(probability, edges), summarise(probability, threshold), threshold)


def psi(expected: Sequence[float], actual: Sequence[float], epsilon: float = PSI_EPSILON) -> float:
    """The population stability index ``sum((a - e) * ln(a / e))`` over the bins, each fraction
    floored at ``epsilon`` so that an empty bin on either side counts as a large but finite shift.

    Raises:
        ValueError: the two have different numbers of bins, or ``epsilon`` is not positive.
    """
    if len(expected) != len(actual):
        raise ValueError(f"{len(expected)} reference bins but {len(actual)} actual bins")
    if epsilon <= 0:
        raise ValueError(f"epsilon must be positive, got {epsilon}")
    total = 0.0
    for e, a in zip(expected, actual, strict=True):
        e, a = max(float(e), epsilon), max(float(a), epsilon)
        total += (a - e) * math.log(a / e)
    return total
