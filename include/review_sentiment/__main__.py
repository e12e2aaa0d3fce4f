"""``python -m review_sentiment``: the shell entry point (:mod:`review_sentiment.cli`)."""

from __future__ import annotations

import sys

from review_sentiment.cli import main

if __name__ == "__main__":
    sys.exit(main())
