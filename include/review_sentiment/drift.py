"""Drift of the week's new reviews against the reviews the champion was trained on.

The *new* reviews are the rows of this run's ingest snapshot that the champion's training
snapshot does not hold: a review id it lacks, or the same id with another label, rating, title or
text (a re-export that relabels old reviews is new data too). A snapshot carries no arrival times
(ingest reads the contract's columns), so for a table source these are the reviews that arrived,
or changed, since the champion's snapshot, whatever the run's window; for a file, the rows added
since. Three checks, each against a bar in ``config`` (``DEFAULT_DRIFT_*``, measured there):

* label share: the share of "recommended" among the new reviews against the champion's data
  (absolute difference above 0.10);
* ratings: the total-variation distance of the 1-5 star distributions (half the sum of the
  absolute share differences: the share of reviews that would have to change rating), above 0.15;
* text: a classifier that tries to tell new from old reviews by their words (scikit-learn's
  ``TfidfVectorizer`` + ``LogisticRegression``, 5-fold cross-validated ROC AUC on as many old as
  new reviews, at most 2,000 a side, seeded), above 0.60. This is evidently's text-drift method
  (a domain classifier), written here in a few lines rather than adding its ~79 packages.

Fewer than 200 new reviews give no verdict ("too few new reviews"), which blocks nothing. Drift
does not make the gate refuse: register records it (``RegisterResult.drift``, tag ``gate.drift``;
the figures as ``drift.*`` tags) and the week routes a drifted candidate to the approval, or keeps
the champion. The champion's snapshot is named by its version tag ``training.snapshot`` (relative
to the artifact root), written at registration (:func:`snapshot_tag`).

Ingest's ``label_stats.json`` (:func:`label_stats`) describes a snapshot's labels for people.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from review_sentiment import schema
from review_sentiment.config import (
    DEFAULT_DRIFT_LABEL_SHARE,
    DEFAULT_DRIFT_MIN_NEW_REVIEWS,
    DEFAULT_DRIFT_RATING_DISTANCE,
    DEFAULT_DRIFT_TEXT_AUC,
)
from review_sentiment.errors import DataContractError, UnsafePathError
from review_sentiment.layout import ArtifactLayout
from review_sentiment.names import TAG_TRAINING_SNAPSHOT

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

log = logging.getLogger(__name__)

RATING = "rating"
STARS = (1, 2, 3, 4, 5)
# Compared to tell a changed review from the one the champion saw.
_CONTENT = (schema.LABEL, RATING, schema.TITLE, schema.TEXT)
TEXT_ROWS_PER_SIDE = 2000  # the classifier's sample: a few seconds at most on 2 cores
TEXT_FOLDS = 5
SEED = 0
TAG_PREFIX = "drift."


@dataclass(frozen=True)
class DriftThresholds:
    """The bars of the three checks and the fewest new reviews that get a verdict.

    Raises:
        ValueError: a bar out of its range.
    """

    label_share: float = DEFAULT_DRIFT_LABEL_SHARE
    rating_distance: float = DEFAULT_DRIFT_RATING_DISTANCE
    text_auc: float = DEFAULT_DRIFT_TEXT_AUC
    min_new: int = DEFAULT_DRIFT_MIN_NEW_REVIEWS

    def __post_init__(self) -> None:
        for name in ("label_share", "rating_distance"):
            if not 0.0 < getattr(self, name) < 1.0:
                raise ValueError(f"drift threshold {name} must be in (0, 1), got {getattr(self, name)}")
        if not 0.5 <= self.text_auc < 1.0:
            raise ValueError(f"drift threshold text_auc must be in [0.5, 1), got {self.text_auc}")
        if self.min_new < TEXT_FOLDS * 2:
            raise ValueError(f"drift min_new must be at least {TEXT_FOLDS * 2}, got {self.min_new}")

    def words(self) -> str:
        return (
            f"label_share {self.label_share:g}, rating_distance {self.rating_distance:g}, "
            f"text_auc {self.text_auc:g}, min_new {self.min_new}"
        )


@dataclass(frozen=True)
class DriftResult:
    """The verdict, its reason in words (naming each check that drifted) and the figures; the
    figures are None when there was no verdict."""

    drifted: bool
    reason: str
    new_reviews: int | None = None
    label_share: float | None = None  # of the new reviews
    reference_label_share: float | None = None  # of the champion's training snapshot
    rating_distance: float | None = None
    text_auc: float | None = None
    thresholds: DriftThresholds = DriftThresholds()

    def to_tags(self) -> dict[str, str]:
        """The figures as MLflow tag values under ``drift.`` (the reason when drifted is the
        decision record's ``gate.drift``)."""
        tags = {f"{TAG_PREFIX}reason": self.reason, f"{TAG_PREFIX}thresholds": self.thresholds.words()}
        if self.new_reviews is not None:
            tags[f"{TAG_PREFIX}new_reviews"] = str(self.new_reviews)
        figures = ("label_share", "reference_label_share", "rating_distance", "text_auc")
        for name in figures:
            value = getattr(self, name)
            if value is not None:
                tags[f"{TAG_PREFIX}{name}"] = f"{value:.6f}"
        return tags


def no_verdict(reason: str) -> DriftResult:
    """A check that could not be made (no champion, no snapshot, too few new reviews)."""
    return DriftResult(drifted=False, reason=reason)


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


def new_reviews(current: pd.DataFrame, reference: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``current`` that ``reference`` lacks: an id it does not hold, or the same id
    with another label, rating, title or text."""
    seen = set(_row_keys(reference))
    return current[[key not in seen for key in _row_keys(current)]]


def _row_keys(frame: pd.DataFrame) -> pd.Series:
    """A hash of each row's id and content, the cells as text (so that an int8 and an Int64 label,
    or two missing titles, compare equal)."""
    import pandas as pd

    return pd.util.hash_pandas_object(frame[[schema.ID, *_CONTENT]].astype(str), index=False)


def rating_shares(ratings: pd.Series) -> np.ndarray:
    """The shares of 1 to 5 stars (other values are left out of the count)."""
    import numpy as np

    counts = ratings.value_counts().reindex(STARS, fill_value=0).to_numpy(dtype=float)
    total = counts.sum()
    return counts / total if total else np.zeros(len(STARS))


def rating_distance(new: pd.Series, reference: pd.Series) -> float:
    """Total-variation distance of two 1-5 star distributions, in [0, 1]."""
    return float(abs(rating_shares(new) - rating_shares(reference)).sum() / 2)


@dataclass(frozen=True)
class TextDrift:
    """The domain classifier's cross-validated ROC AUC and the words it finds most typical of the
    new reviews."""

    auc: float
    words: tuple[str, ...]


def text_drift(
    new: pd.Series, old: pd.Series, *, rows_per_side: int = TEXT_ROWS_PER_SIDE, seed: int = SEED
) -> TextDrift:
    """How well TF-IDF words tell new reviews from old (0.5: not at all).

    As many old as new reviews (at most ``rows_per_side`` each, sampled with ``seed``) so that the
    classifier has no majority class to lean on; ``TEXT_FOLDS``-fold stratified cross-validation,
    the vectoriser fitted inside each fold.

    Raises:
        ValueError: fewer than ``TEXT_FOLDS`` texts on a side.
    """
    import numpy as np
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline

    size = min(len(new), len(old), rows_per_side)
    if size < TEXT_FOLDS:
        raise ValueError(
            f"text drift needs at least {TEXT_FOLDS} texts a side, got {len(new)} and {len(old)}"
        )
    texts = np.concatenate([new.sample(size, random_state=seed), old.sample(size, random_state=seed)])
    is_new = np.repeat([1, 0], size)
    classifier = make_pipeline(
        TfidfVectorizer(sublinear_tf=True, stop_words="english", max_features=20000),
        LogisticRegression(max_iter=1000),
    )
    folds = StratifiedKFold(TEXT_FOLDS, shuffle=True, random_state=seed)
    auc = float(cross_val_score(classifier, texts, is_new, cv=folds, scoring="roc_auc").mean())
    classifier.fit(texts, is_new)
    vocabulary = classifier[0].get_feature_names_out()
    top = np.argsort(classifier[1].coef_[0])[::-1][:5]
    return TextDrift(auc, tuple(str(vocabulary[i]) for i in top))


def check_drift(
    current: pd.DataFrame,
    reference: pd.DataFrame,
    thresholds: DriftThresholds | None = None,
    *,
    where: str = "the reference",
) -> DriftResult:
    """The new reviews of ``current`` against ``reference`` (the champion's training data).

    Args:
        current: This run's snapshot (canonical columns).
        reference: The champion's training snapshot.
        thresholds: The bars (default: ``config``'s).
        where: What ``reference`` is, for the reason.

    Returns:
        Drifted when any check is above its bar; no verdict with too few new reviews.
    """
    bars = thresholds or DriftThresholds()
    new = new_reviews(current, reference)
    count = len(new)
    if count < bars.min_new:
        return no_verdict(
            f"no drift verdict: too few new reviews ({count} not in {where}; a verdict needs {bars.min_new})"
        )
    share, reference_share = _positive_share(new), _positive_share(reference)
    distance = rating_distance(new[RATING], reference[RATING])
    text = text_drift(_texts(new), _texts(reference))
    findings = []
    if abs(share - reference_share) > bars.label_share:
        findings.append(
            f"label share: {share:.3f} of the new reviews are recommended vs {reference_share:.3f} "
            f"(|difference| {abs(share - reference_share):.3f} > {bars.label_share:g})"
        )
    if distance > bars.rating_distance:
        findings.append(
            f"rating distribution: total-variation distance {distance:.3f} > {bars.rating_distance:g} "
            f"(1-5 stars {_shares(new[RATING])} vs {_shares(reference[RATING])})"
        )
    if text.auc > bars.text_auc:
        findings.append(
            f"text: a classifier tells new from old reviews with ROC AUC {text.auc:.3f} > "
            f"{bars.text_auc:g} (words typical of the new: {', '.join(text.words)})"
        )
    head = f"{count} new reviews vs {where}"
    figures = (
        f"recommended {share:.3f} vs {reference_share:.3f}, rating distance {distance:.3f}, "
        f"text ROC AUC {text.auc:.3f}"
    )
    reason = f"{head} drifted: {'; '.join(findings)}" if findings else f"{head}: no drift ({figures})"
    return DriftResult(
        drifted=bool(findings), reason=reason, new_reviews=count, label_share=share,
        reference_label_share=reference_share, rating_distance=distance, text_auc=text.auc,
        thresholds=bars,
    )  # fmt: skip


def check_against_champion(
    snapshot: str | Path, champion: Any, layout: ArtifactLayout, thresholds: DriftThresholds | None = None
) -> DriftResult:
    """This run's snapshot against the one the champion was trained on (its version tag
    ``training.snapshot``); no verdict, with the reason, when there is none to compare with.

    Args:
        snapshot: This run's ingest snapshot.
        champion: The champion's MLflow ``ModelVersion``, or None when there is none.
        layout: The artifact root the tag is relative to.
        thresholds: The bars (default: ``config``'s).

    Raises:
        DataContractError: a snapshot cannot be read or lacks a column the checks need.
    """
    if champion is None:
        return no_verdict("no drift check: there is no champion to compare with")
    version = champion.version
    tagged = champion.tags.get(TAG_TRAINING_SNAPSHOT)
    if not tagged:
        return no_verdict(
            f"no drift check: champion v{version} has no {TAG_TRAINING_SNAPSHOT} tag (registered "
            "before it was recorded, or from a snapshot outside the artifact root)"
        )
    try:
        reference = layout.resolve(tagged)
    except UnsafePathError as exc:
        return no_verdict(f"no drift check: champion v{version}'s training snapshot: {exc}")
    if not reference.is_file():
        return no_verdict(f"no drift check: champion v{version}'s training snapshot {tagged} is missing")
    where = f"champion v{version}'s training snapshot"
    return check_drift(read_snapshot(snapshot), read_snapshot(reference), thresholds, where=where)


def snapshot_tag(snapshot: str | Path | None, layout: ArtifactLayout) -> dict[str, str]:
    """The ``training.snapshot`` tag of a version trained on ``snapshot``: its path relative to
    the artifact root; none (logged) for a snapshot outside the root, which a later check could
    not read safely."""
    if snapshot is None:
        return {}
    path = Path(snapshot).resolve()
    root = layout.root.resolve()
    if not path.is_relative_to(root):
        log.warning(
            "snapshot %s is outside the artifact root %s: no %s tag", path, root, TAG_TRAINING_SNAPSHOT
        )
        return {}
    return {TAG_TRAINING_SNAPSHOT: path.relative_to(root).as_posix()}


def read_snapshot(path: str | Path) -> pd.DataFrame:
    """The columns the checks need from an ingest snapshot.

    Raises:
        DataContractError: the file cannot be read or lacks one of them.
    """
    import pandas as pd

    try:
        return pd.read_parquet(path, columns=[schema.ID, *_CONTENT])
    except (OSError, ValueError, KeyError) as exc:
        raise DataContractError(
            [f"cannot read the columns the drift check needs: {exc}"], str(path)
        ) from None


def _positive_share(frame: pd.DataFrame) -> float:
    return float(label_stats(frame)["positive_share"])


def _texts(frame: pd.DataFrame) -> pd.Series:
    """Title and text, as the model reads a review."""
    return frame[schema.TITLE].fillna("").astype(str) + " " + frame[schema.TEXT].fillna("").astype(str)


def _shares(ratings: pd.Series) -> str:
    return "/".join(f"{share:.2f}" for share in rating_shares(ratings))
