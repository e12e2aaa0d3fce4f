"""Unit tests of the drift check: the week's new reviews against the champion's training snapshot
(label share, rating distribution, a TF-IDF classifier telling new from old texts), and where the
champion's snapshot is found (its ``training.snapshot`` tag). Synthetic reviews, no servers."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from review_sentiment import schema
from review_sentiment.drift import (
    DriftThresholds,
    check_against_champion,
    check_drift,
    label_stats,
    new_reviews,
    rating_distance,
    read_snapshot,
    snapshot_tag,
    text_drift,
)
from review_sentiment.errors import DataContractError
from review_sentiment.layout import ArtifactLayout

COMMON = [
    "fits",
    "runs",
    "small",
    "large",
    "fabric",
    "color",
    "size",
    "love",
    "wear",
    "soft",
    "cute",
    "price",
]
DRESSES = ["dress", "skirt", "hem", "waist", "slip", "zipper", "lining", "flowy"]


def reviews(
    n: int,
    *,
    start: int = 0,
    seed: int = 0,
    positive: float = 0.82,
    ratings: tuple[float, ...] = (0.04, 0.07, 0.13, 0.21, 0.55),
    extra: list[str] | None = None,
) -> pd.DataFrame:
    """``n`` synthetic reviews with ids from ``start``: the label, rating and words drawn at random
    (``extra`` words mixed into every text)."""
    rng = np.random.default_rng(seed)
    words = COMMON + (extra or [])
    texts = [" ".join(rng.choice(words, size=12)) for _ in range(n)]
    return pd.DataFrame(
        {
            schema.ID: pd.array(np.arange(start, start + n), dtype="Int64"),
            schema.LABEL: (rng.random(n) < positive).astype("int8"),
            "rating": pd.array(rng.choice([1, 2, 3, 4, 5], size=n, p=ratings), dtype="Int64"),
            schema.TITLE: [None if i % 3 else "nice" for i in range(n)],
            schema.TEXT: texts,
        }
    )


OLD = reviews(1000, seed=1)


def test_label_stats_counts_and_share() -> None:
    frame = pd.DataFrame({schema.LABEL: [1, 1, 1, 0, 1, 0, 1, 1]})
    assert label_stats(frame) == {"rows": 8, "positive": 6, "negative": 2, "positive_share": 0.75}


@pytest.mark.parametrize("labels", [[], [1, 0, 2], [1, None, 0]], ids=["empty", "label-2", "missing"])
def test_label_stats_refuses_unvalidated_labels(labels: list) -> None:
    with pytest.raises(DataContractError, match="label statistics need"):
        label_stats(pd.DataFrame({schema.LABEL: pd.array(labels, dtype="Int64")}))


# --- Which reviews are new ----------------------------------------------------------------------
def test_new_reviews_are_unknown_ids_and_changed_rows() -> None:
    old = reviews(10)
    current = pd.concat([old, reviews(3, start=100, seed=5)], ignore_index=True)
    current.loc[2, schema.LABEL] = 1 - current.loc[2, schema.LABEL]  # relabelled
    current.loc[4, schema.TEXT] = "edited text"
    current.loc[6, "rating"] = 6 - current.loc[6, "rating"] if current.loc[6, "rating"] != 3 else 1
    assert sorted(new_reviews(current, old)[schema.ID]) == [2, 4, 6, 100, 101, 102]


def test_the_same_reviews_in_other_dtypes_are_not_new() -> None:
    old = reviews(10)
    same = old.astype({schema.LABEL: "Int64", "rating": "int64", schema.ID: "int64"})
    assert new_reviews(same, old).empty  # missing titles match missing titles too
    assert new_reviews(old.iloc[:4], old).empty  # rows dropped from the week are not new


# --- The three measures -------------------------------------------------------------------------
def test_rating_distance_is_the_total_variation_distance() -> None:
    fives, fours = pd.Series([5] * 10), pd.Series([4] * 10)
    assert rating_distance(fives, fives) == 0.0
    assert rating_distance(fives, fours) == 1.0
    assert rating_distance(pd.Series([5, 5, 4, 4]), fives) == pytest.approx(0.5)
    assert rating_distance(pd.Series([5, 5, 7, 0]), fives) == 0.0  # only 1-5 stars are counted


def test_text_drift_tells_other_words_apart_and_names_them() -> None:
    new = reviews(300, start=10_000, seed=2, extra=DRESSES)
    found = text_drift(new[schema.TEXT], OLD[schema.TEXT])
    assert found.auc > 0.95
    assert set(found.words) <= set(DRESSES)


def test_text_drift_of_the_same_words_is_chance_and_repeatable() -> None:
    new = reviews(300, start=10_000, seed=2)
    found = text_drift(new[schema.TEXT], OLD[schema.TEXT])
    assert 0.35 < found.auc < 0.6
    assert text_drift(new[schema.TEXT], OLD[schema.TEXT]) == found  # seeded


def test_text_drift_samples_as_many_old_as_new() -> None:
    """10 times more old reviews do not change the comparison: the classifier sees equal halves."""
    new = reviews(300, start=10_000, seed=2, extra=DRESSES)[schema.TEXT]
    few, many = OLD[schema.TEXT].iloc[:300], pd.concat([OLD[schema.TEXT].iloc[:300]] * 10, ignore_index=True)
    assert text_drift(new, few, rows_per_side=300).auc == pytest.approx(
        text_drift(new, many, rows_per_side=300).auc, abs=0.03
    )
    with pytest.raises(ValueError, match="at least 5 texts a side"):
        text_drift(new.iloc[:3], few)


# --- The verdict --------------------------------------------------------------------------------
def test_too_few_new_reviews_give_no_verdict() -> None:
    week = pd.concat([OLD, reviews(199, start=10_000, positive=0.0)], ignore_index=True)
    result = check_drift(week, OLD, where="champion v3's training snapshot")
    assert not result.drifted
    assert result.reason == (
        "no drift verdict: too few new reviews (199 not in champion v3's training snapshot; "
        "a verdict needs 200)"
    )
    assert result.label_share is None
    assert set(result.to_tags()) == {"drift.reason", "drift.thresholds"}


def test_an_ordinary_week_does_not_drift_and_tags_its_figures() -> None:
    week = pd.concat([OLD, reviews(400, start=10_000, seed=3)], ignore_index=True)
    result = check_drift(week, OLD, where="champion v3's training snapshot")
    assert not result.drifted, result.reason
    assert result.reason.startswith("400 new reviews vs champion v3's training snapshot: no drift (")
    tags = result.to_tags()
    assert tags["drift.new_reviews"] == "400"
    assert abs(float(tags["drift.label_share"]) - float(tags["drift.reference_label_share"])) < 0.1
    assert float(tags["drift.rating_distance"]) < 0.15
    assert float(tags["drift.text_auc"]) < 0.6
    assert "gate.drift" not in tags  # the decision record writes that one


@pytest.mark.parametrize(
    ("week", "named", "not_named"),
    [
        ({"positive": 0.18}, "label share: 0.", ("rating distribution", "text:")),
        ({"ratings": (1.0, 0, 0, 0, 0)}, "rating distribution: total-variation distance 0.9",
         ("label share", "text:")),
        ({"extra": DRESSES}, "text: a classifier tells new from old reviews with ROC AUC",
         ("label share", "rating")),
    ],
    ids=["inverted-labels", "one-star-week", "other-words"],
)  # fmt: skip
def test_a_drifted_week_names_what_drifted(week: dict, named: str, not_named: tuple[str, ...]) -> None:
    drifted = pd.concat([OLD, reviews(300, start=10_000, seed=4, **week)], ignore_index=True)
    result = check_drift(drifted, OLD, where="champion v3's training snapshot")
    assert result.drifted
    assert result.reason.startswith("300 new reviews vs champion v3's training snapshot drifted: ")
    assert named in result.reason
    for other in not_named:
        assert other not in result.reason


def test_thresholds_are_configurable_and_checked() -> None:
    week = pd.concat([OLD, reviews(300, start=10_000, seed=4, positive=0.76)], ignore_index=True)
    assert not check_drift(week, OLD).drifted
    assert check_drift(week, OLD, DriftThresholds(label_share=0.02)).drifted
    assert "min_new 300" in check_drift(week, OLD, DriftThresholds(min_new=300)).to_tags()["drift.thresholds"]
    for bad in ({"label_share": 0.0}, {"rating_distance": 1.5}, {"text_auc": 0.4}, {"min_new": 3}):
        with pytest.raises(ValueError, match="drift"):
            DriftThresholds(**bad)


# --- The champion's snapshot --------------------------------------------------------------------
def _champion(tags: dict[str, str]) -> SimpleNamespace:
    return SimpleNamespace(version="3", tags=tags)


def test_the_snapshot_tag_is_relative_to_the_artifact_root(tmp_path: Path) -> None:
    layout = ArtifactLayout(tmp_path / "root")
    inside = tmp_path / "root" / "sentiment_retrain" / "run-1" / "ingest" / "reviews.parquet"
    assert snapshot_tag(inside, layout) == {
        "training.snapshot": "sentiment_retrain/run-1/ingest/reviews.parquet"
    }
    assert snapshot_tag(tmp_path / "elsewhere" / "reviews.parquet", layout) == {}  # not readable later
    assert snapshot_tag(None, layout) == {}


@pytest.mark.parametrize(
    ("champion", "reason"),
    [
        (None, "no drift check: there is no champion to compare with"),
        (_champion({}), "no drift check: champion v3 has no training.snapshot tag"),
        (_champion({"training.snapshot": "../outside/reviews.parquet"}), "outside the artifact root"),
        (_champion({"training.snapshot": "gone/reviews.parquet"}),
         "training snapshot gone/reviews.parquet is missing"),
    ],
    ids=["no-champion", "no-tag", "escaping-tag", "missing-file"],
)  # fmt: skip
def test_no_snapshot_to_compare_with_is_no_check_and_says_why(
    tmp_path: Path, champion: SimpleNamespace | None, reason: str
) -> None:
    week = tmp_path / "week.parquet"
    OLD.to_parquet(week)
    result = check_against_champion(week, champion, ArtifactLayout(tmp_path / "root"))
    assert not result.drifted
    assert reason in result.reason


def test_the_week_is_checked_against_the_tagged_snapshot(tmp_path: Path) -> None:
    layout = ArtifactLayout(tmp_path)
    (tmp_path / "w1").mkdir()
    OLD.to_parquet(tmp_path / "w1" / "reviews.parquet")
    week = tmp_path / "w2.parquet"
    pd.concat([OLD, reviews(300, start=10_000, seed=4, positive=0.18)]).to_parquet(week)
    result = check_against_champion(
        week, _champion(snapshot_tag(tmp_path / "w1" / "reviews.parquet", layout)), layout
    )
    assert result.drifted
    assert result.reason.startswith("300 new reviews vs champion v3's training snapshot drifted: label share")


def test_a_snapshot_without_the_columns_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "reviews.parquet"
    OLD.drop(columns=["rating"]).to_parquet(path)
    with pytest.raises(DataContractError, match="cannot read the columns the drift check needs"):
        read_snapshot(path)
