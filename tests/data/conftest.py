"""Fixtures of the data tests: the real file, read once per session."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from review_sentiment.sources import read_file


@pytest.fixture(scope="session")
def real_raw(real_reviews_path: Path) -> pd.DataFrame:
    """The real file as ingest reads it: canonical column names, every cell as text."""
    return read_file(real_reviews_path)
