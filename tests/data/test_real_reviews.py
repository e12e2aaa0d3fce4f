"""The data contract on the real review file (read at run time; never copied into the repo)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pytest

from review_sentiment import schema
from review_sentiment.artifacts import read_json
from review_sentiment.batch_score import SCORED_COLUMNS
from review_sentiment.ingest import ingest
from review_sentiment.layout import LABEL_STATS_NAME, REPORT_NAME
from review_sentiment.sources import iter_reviews
from review_sentiment.validate import validate_reviews

ROWS = 21_186
WITHOUT_TEXT = 845


@pytest.fixture(scope="module")
def validated(real_raw: pd.DataFrame):
    return validate_reviews(real_raw, source="real file")


def test_every_row_and_column_is_read(real_raw: pd.DataFrame) -> None:
    assert len(real_raw) == ROWS
    assert tuple(real_raw.columns) == schema.COLUMNS


def test_rows_without_text_are_dropped_and_counted(validated) -> None:
    reviews, report = validated
    assert report.rows_in == ROWS
    assert report.dropped_no_text == WITHOUT_TEXT
    assert report.rows_out == len(reviews) == ROWS - WITHOUT_TEXT
    assert (reviews[schema.TEXT].str.strip() != "").all()


def test_labels_are_binary_with_both_classes(validated) -> None:
    reviews, report = validated
    labels = reviews[schema.LABEL]
    assert labels.notna().all()
    assert set(labels.unique()) == {0, 1}
    assert report.label_counts == labels.value_counts().to_dict()
    # About 82% recommended, as the data's README says: the minority class must be reported on.
    assert labels.mean() == pytest.approx(0.82, abs=0.01)


def test_ids_are_present_and_unique(validated) -> None:
    reviews, _ = validated
    ids = reviews[schema.ID]
    assert ids.notna().all()
    assert ids.is_unique


@pytest.mark.parametrize(("column", "low", "high"), [("rating", 1, 5), ("age", 18, 99)])
def test_integer_columns_are_typed_and_in_range(validated, column: str, low: int, high: int) -> None:
    reviews, _ = validated
    values = reviews[column]
    assert str(values.dtype) == "Int64"
    assert values.notna().all()
    assert values.between(low, high).all()


@pytest.mark.parametrize(
    ("column", "quirk"),
    [
        (schema.TEXT, "&#39;"),  # HTML entities stay as written; preprocess unescapes them
        (schema.TEXT, "\n"),  # newlines inside quoted cells do not split rows
    ],
    ids=["html-entity", "embedded-newline"],
)
def test_text_quirks_survive_reading(real_raw: pd.DataFrame, column: str, quirk: str) -> None:
    assert real_raw[column].str.contains(quirk, regex=False).any()


def test_misspelled_division_survives_reading(real_raw: pd.DataFrame) -> None:
    divisions = set(real_raw["division_name"])
    assert "Initmates" in divisions
    assert {"General", "General Petite"} <= divisions


def test_empty_titles_and_texts_read_as_empty_strings(real_raw: pd.DataFrame) -> None:
    titles, texts = real_raw[schema.TITLE], real_raw[schema.TEXT]
    assert titles.notna().all()
    assert texts.notna().all()
    assert (titles == "").sum() > 1000
    assert (texts.str.strip() == "").sum() == WITHOUT_TEXT


def test_ingest_snapshots_the_real_file_without_touching_it(real_reviews_path: Path, tmp_path: Path) -> None:
    digest = hashlib.sha256(real_reviews_path.read_bytes()).hexdigest()

    snapshot = ingest(real_reviews_path, tmp_path / "ingest")

    snap = pd.read_parquet(snapshot)
    assert len(snap) == ROWS - WITHOUT_TEXT
    assert tuple(snap.columns) == schema.COLUMNS
    assert snap[schema.ID].is_unique
    report = read_json(snapshot.parent / REPORT_NAME)
    assert (report["rows_in"], report["dropped_no_text"]) == (ROWS, WITHOUT_TEXT)
    assert report["source"] == str(real_reviews_path)
    assert report["quarantined"] == 0  # the real file has no NUL byte
    stats = read_json(snapshot.parent / LABEL_STATS_NAME)
    assert stats["rows"] == len(snap)
    assert stats["positive"] == int((snap[schema.LABEL] == 1).sum())
    assert stats["positive_share"] == pytest.approx(0.82, abs=0.01)
    assert sorted(p.name for p in snapshot.parent.iterdir()) == [REPORT_NAME, LABEL_STATS_NAME, snapshot.name]
    assert hashlib.sha256(real_reviews_path.read_bytes()).hexdigest() == digest


@pytest.mark.parametrize("fraction", [0.05, 0.5])
def test_sampling_keeps_the_class_balance(real_reviews_path: Path, tmp_path: Path, fraction: float) -> None:
    snap = pd.read_parquet(ingest(real_reviews_path, tmp_path, sample_fraction=fraction, seed=1))
    assert len(snap) == pytest.approx((ROWS - WITHOUT_TEXT) * fraction, abs=2)
    assert snap[schema.LABEL].mean() == pytest.approx(0.82, abs=0.01)
    assert snap[schema.ID].is_monotonic_increasing


def test_scoring_reads_the_real_file_as_ingest_does(real_reviews_path: Path, real_raw: pd.DataFrame) -> None:
    """Scoring's chunked read of the real file gives ingest's rows and cells, 5,000 at a time."""
    chunks = list(iter_reviews(real_reviews_path, 5_000, columns=SCORED_COLUMNS))
    assert [len(c) for c in chunks] == [5_000] * 4 + [ROWS - 20_000]
    expected = real_raw.loc[:, list(SCORED_COLUMNS)]
    pd.testing.assert_frame_equal(pd.concat(chunks, ignore_index=True), expected)
