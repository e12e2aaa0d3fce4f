"""Synthetic reviews in the original file's schema, for tests and machines without the data set.

Every row is clearly synthetic: its division is "Synthetic" and its file name says so. The
texts are built from small phrase lists, so a model can learn them but they carry no real data.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

from review_sentiment.artifacts import atomic_file
from review_sentiment.schema import ORIGINAL_TO_CANONICAL

SYNTHETIC_DIVISION = "Synthetic"
_GARMENTS = ["dress", "top", "sweater", "skirt", "blouse", "jacket", "jeans", "cardigan"]
_COLOURS = ["red", "blue", "green", "black", "white", "grey", "navy", "pink"]
_POSITIVE = [
    "I love this {g}, it fits perfectly",
    "The {c} colour is gorgeous and the fabric feels soft",
    "Great quality, flattering cut, I get compliments every time",
    "So comfortable and true to size, I bought it in {c} too",
    "Beautiful {g}, well made and worth the price",
]
_NEGATIVE = [
    "I returned this {g}, the fabric is cheap and thin",
    "Terrible fit, way too small and the seams came apart",
    "The {c} colour looked nothing like the picture, very disappointed",
    "Poor quality, it shrank after one wash and looks sloppy",
    "Did not fit at all, unflattering and itchy, sending it back",
]
_NEUTRAL = ["I am 5'4\" and ordered a medium.", "Wore it to work.", "", "It arrived quickly."]
_DEPARTMENTS = {"dress": "Dresses", "jeans": "Bottoms", "skirt": "Bottoms", "jacket": "Jackets"}


def synthetic_rows(n: int, seed: int = 0, not_recommended_share: float = 0.18) -> list[dict[str, str]]:
    """``n`` synthetic reviews as dicts keyed by the original column names."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        negative = rng.random() < not_recommended_share
        garment, colour = rng.choice(_GARMENTS), rng.choice(_COLOURS)
        phrases = rng.sample(_NEGATIVE if negative else _POSITIVE, 2)
        # Some label noise, as in real reviews, so metrics are not trivially perfect.
        if rng.random() < 0.05:
            phrases[1] = rng.choice(_POSITIVE if negative else _NEGATIVE)
        text = ". ".join(p.format(g=garment, c=colour) for p in phrases) + ". " + rng.choice(_NEUTRAL)
        rating = rng.choice([1, 2, 3] if negative else [4, 5])
        rows.append(
            {
                "Unnamed: 0": str(i),
                "Clothing ID": str(rng.randint(1, 1200)),
                "Age": str(rng.randint(18, 80)),
                "Title": rng.choice(["", "Love it" if not negative else "Not for me"]),
                "Review Text": "" if rng.random() < 0.02 else text.strip(),
                "Rating": str(rating),
                "Recommended IND": "0" if negative else "1",
                "Positive Feedback Count": str(rng.randint(0, 20)),
                "Division Name": SYNTHETIC_DIVISION,
                "Department Name": _DEPARTMENTS.get(garment, "Tops"),
                "Class Name": garment.capitalize(),
            }
        )
    return rows


def write_synthetic_csv(path: str | Path, n: int = 2000, seed: int = 0) -> Path:
    """Write ``n`` synthetic reviews as a CSV in the original layout (empty first header)."""
    path = Path(path)
    header = list(ORIGINAL_TO_CANONICAL)
    with atomic_file(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["", *header[1:]])
        for row in synthetic_rows(n, seed):
            writer.writerow([row[h] for h in header])
    return path
