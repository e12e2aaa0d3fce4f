"""The shipped data set: the real file, unchanged, where every default looks for it."""

from __future__ import annotations

import hashlib
import re

from review_sentiment import config
from review_sentiment.sources import read_file

SHIPPED = config.PROJECT_ROOT / "data" / "womens_clothing_reviews.csv.gz"
README = SHIPPED.parent / "README.md"


def test_the_defaults_read_the_shipped_file() -> None:
    assert config.DEFAULT_REVIEWS_PATH == SHIPPED
    assert config.Settings.from_env({}).reviews_path == SHIPPED


def test_the_file_is_the_one_its_readme_names_byte_for_byte() -> None:
    text = README.read_text(encoding="utf-8")
    digest = re.search(r"sha256\s+`([0-9a-f]{64})`", text)
    size = re.search(r"\(([\d,]+) bytes", text)
    assert digest, "data/README.md must state the file's sha256"
    assert size, "data/README.md must state the file's size"
    data = SHIPPED.read_bytes()
    assert hashlib.sha256(data).hexdigest() == digest.group(1), "the shipped file was changed"
    assert len(data) == int(size.group(1).replace(",", ""))


def test_the_file_holds_the_original_rows_and_the_licence_is_stated() -> None:
    frame = read_file(SHIPPED)
    assert len(frame) == 21_186
    assert int(frame["review_text"].fillna("").str.strip().ne("").sum()) == 20_341
    assert "CC0" in README.read_text(encoding="utf-8")
