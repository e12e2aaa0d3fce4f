"""Label-distribution drift: this week's positive-label share against the last promoted run's.

A week whose share of "recommended" reviews moves more than a threshold (absolute, default
0.10) from the share of the data behind the current champion is suspect: a broken upstream
export, a relabelling, a different product mix. Training still runs and is logged; the register
step blocks the promotion and says why.

``ingest`` writes each run's label statistics (``IngestFiles.label_stats``); ``register`` compares
them with the reference saved at the last promotion (under ``ArtifactLayout.state_dir``) and,
only after ``champion`` moved, saves this run's as the new reference. ``DriftResult.to_tags()``
gives the figures as MLflow tag values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from review_sentiment import schema
from review_sentiment.artifacts import read_json, write_json
from review_sentiment.errors import DataContractError
from review_sentiment.layout import LABEL_STATS_NAME, ArtifactLayout
from review_sentiment.names import TAG_DRIFT, TAG_PIPELINE_RUN

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_DRIFT_THRESHOLD = 0.10


@dataclass(frozen=True)
class DriftResult:
    """The drift decision and the figures behind it."""

    drifted: bool
    reason: str
    current_share: float
    previous_share: float | None
    delta: float | None
    threshold: float

    def to_tags(self) -> dict[str, str]:
        """The decision as MLflow tag values (``gate.drift`` holds the reason when drifted)."""
        tags = {
            "drift.positive_share": f"{self.current_share:.6f}",
            "drift.threshold": f"{self.threshold:.6f}",
        }
        if self.previous_share is not None and self.delta is not None:
            tags["drift.reference_positive_share"] = f"{self.previous_share:.6f}"
            tags["drift.delta"] = f"{self.delta:+.6f}"
        if self.drifted:
            tags[TAG_DRIFT] = self.reason
        return tags


def label_stats(frame: pd.DataFrame) -> dict[str, Any]:
    """Counts and positive share of the label in a validated frame (labels in {0, 1}).

    Raises:
        DataContractError: the frame is empty or holds labels other than 0 and 1.
    """
    labels = frame[schema.LABEL]
    rows = len(labels)
    positive = int((labels == 1).sum())
    negative = int((labels == 0).sum())
    if rows == 0 or positive + negative != rows:
        raise DataContractError(
            [f"label statistics need {rows} labels in {{0, 1}}, found {positive + negative}"], "label stats"
        )
    return {"rows": rows, "positive": positive, "negative": negative, "positive_share": positive / rows}


def check_label_drift(
    current: dict[str, Any], previous: dict[str, Any] | None, threshold: float = DEFAULT_DRIFT_THRESHOLD
) -> DriftResult:
    """Compare positive-label shares; drifted when they differ by more than ``threshold``.

    Args:
        current: ``label_stats`` of this run.
        previous: ``label_stats`` of the last promoted run, or None when there is none yet.
        threshold: Largest allowed absolute difference of the positive share, in (0, 1).

    Returns:
        The decision; without a reference nothing has drifted.

    Raises:
        ValueError: the threshold or a share is not a number in range.
    """
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"drift threshold must be in (0, 1), got {threshold}")
    share = _share(current, "current")
    if previous is None:
        return DriftResult(
            drifted=False,
            reason=f"positive share {share:.3f}; no reference run yet",
            current_share=share,
            previous_share=None,
            delta=None,
            threshold=threshold,
        )
    reference = _share(previous, "reference")
    delta = share - reference
    drifted = abs(delta) > threshold
    run = previous.get(TAG_PIPELINE_RUN)
    where = f"the last promoted run ({run})" if run else "the last promoted run"
    verdict = "above" if drifted else "within"
    return DriftResult(
        drifted=drifted,
        reason=(
            f"positive-label share {share:.3f} vs {reference:.3f} in {where}: "
            f"|delta| {abs(delta):.3f} {verdict} the threshold {threshold:.2f}"
        ),
        current_share=share,
        previous_share=reference,
        delta=delta,
        threshold=threshold,
    )


def load_label_stats(path: str | Path) -> dict[str, Any]:
    """Read a ``label_stats.json`` written by ingest."""
    stats = read_json(Path(path))
    _share(stats, str(path))
    return stats


def reference_stats_path(layout: ArtifactLayout, model_name: str) -> Path:
    """Where the last promoted run's label statistics live for ``model_name``.

    Raises:
        ValueError: the model name cannot be a single folder name.
    """
    return layout.state_dir(model_name) / LABEL_STATS_NAME


def load_reference_stats(layout: ArtifactLayout, model_name: str) -> dict[str, Any] | None:
    """The label statistics saved at the last promotion, or None if nothing was promoted yet."""
    path = reference_stats_path(layout, model_name)
    if not path.is_file():
        return None
    return load_label_stats(path)


def save_reference_stats(
    layout: ArtifactLayout, model_name: str, stats: dict[str, Any], *, pipeline_run_id: str | None
) -> Path:
    """Record ``stats`` as the reference for the next run; call only after a successful promotion.

    The file is replaced atomically: a crash leaves the previous reference or the new one.

    Returns:
        The path written.
    """
    _share(stats, "stats to save")
    path = reference_stats_path(layout, model_name)
    payload = {**stats, TAG_PIPELINE_RUN: pipeline_run_id, "saved_at": datetime.now(UTC).isoformat()}
    return write_json(path, payload)


def _share(stats: dict[str, Any], what: str) -> float:
    try:
        share = float(stats["positive_share"])
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"{what} label stats lack a numeric positive_share: {stats!r}") from None
    if not (math.isfinite(share) and 0.0 <= share <= 1.0):
        raise ValueError(f"{what} positive_share must be in [0, 1], got {share}")
    return share
