"""No review in two splits, on the real file: asserted by text hash, of the cleaned text the model
sees and of the raw review text, after the same validation, cleaning and split the DAG runs."""

from __future__ import annotations

import pandas as pd
import pytest

from review_sentiment import schema
from review_sentiment.cleaning_rules import PreprocessSettings
from review_sentiment.preprocess import CLEAN, CLEAN_TITLE, clean_frame
from review_sentiment.tokenize import split_frame
from review_sentiment.validate import validate_reviews
from tests.support.hashing import text_hashes


@pytest.fixture(scope="module", params=[False, True], ids=["seed-settings", "keep-negations"])
def splits(request: pytest.FixtureRequest, real_raw: pd.DataFrame) -> dict[str, pd.DataFrame]:
    frame, _ = validate_reviews(real_raw, source="real file")
    frame[[CLEAN, CLEAN_TITLE]] = clean_frame(
        frame, PreprocessSettings.notebook(keep_negations=request.param)
    )
    return split_frame(frame)


def _overlaps(splits: dict[str, pd.DataFrame], column: str) -> dict[str, int]:
    hashes = {name: text_hashes(part[column]) for name, part in splits.items()}
    names = list(hashes)
    return {f"{a}&{b}": len(hashes[a] & hashes[b]) for i, a in enumerate(names) for b in names[i + 1 :]}


def test_no_cleaned_text_in_two_splits(splits: dict[str, pd.DataFrame]) -> None:
    assert set(splits) == {"train", "validation", "test"}
    assert _overlaps(splits, CLEAN) == {"train&validation": 0, "train&test": 0, "validation&test": 0}


def test_no_raw_review_text_in_two_splits(splits: dict[str, pd.DataFrame]) -> None:
    assert schema.TEXT in splits["train"].columns
    assert _overlaps(splits, schema.TEXT) == {"train&validation": 0, "train&test": 0, "validation&test": 0}


def test_no_review_id_in_two_splits(splits: dict[str, pd.DataFrame]) -> None:
    ids = [set(part[schema.ID]) for part in splits.values()]
    assert sum(len(i) for i in ids) == len(set().union(*ids))


def test_growing_real_data_5_percent_or_sampling_25_percent_moves_no_review(real_raw: pd.DataFrame) -> None:
    frame, _ = validate_reviews(real_raw, source="real file")
    frame[[CLEAN, CLEAN_TITLE]] = clean_frame(frame, PreprocessSettings.notebook())
    frame = frame.sort_values(schema.ID)
    earlier = frame.head(round(len(frame) / 1.05))  # this week; next week adds 5% more reviews

    def split_of(part: pd.DataFrame) -> dict[int, str]:
        return {int(i): name for name, s in split_frame(part).items() for i in s[schema.ID]}

    before, grown = split_of(earlier), split_of(frame)
    sampled = split_of(earlier.sample(frac=0.25, random_state=1))
    assert {i: grown[i] for i in before} == before
    both = sampled.keys() & before.keys()  # a sample may keep another id of a duplicate text
    assert len(both) > 0.95 * len(sampled)
    assert {i: before[i] for i in both} == {i: sampled[i] for i in both}
    trained_on = {i for i, name in before.items() if name != "test"}
    assert not trained_on & {i for i, name in grown.items() if name == "test"}
