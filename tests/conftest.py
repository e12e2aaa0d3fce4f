"""Fixtures shared across the test folders. Keep each block self-contained."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


# --- The real review file: shipped under data/ (CC0), or REVIEWS_PATH.
@pytest.fixture(scope="session")
def real_reviews_path() -> Path:
    """Path of the real review file (``REVIEWS_PATH``, else the shipped ``data/`` file).

    When it is missing the requesting tests are skipped on a workstation, but fail on CI
    (``CI=true``), where a skipped data test would hide a broken data mount.
    """
    from review_sentiment.config import Settings

    path = Settings.from_env().reviews_path
    if not path.is_file():
        reason = f"the real review file is missing: {path} (set REVIEWS_PATH to its location)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; on CI the data tests must run, not skip", pytrace=False)
        pytest.skip(reason)
    return path
