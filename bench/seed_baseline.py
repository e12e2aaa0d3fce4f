"""The seed notebook's preprocessing loop, reproduced faithfully as the benchmark's baseline.

For each review: ``re.sub('[^a-zA-z]', ' ', text)``, lowercase, split, a new ``PorterStemmer()``
per review, and ``set(stopwords.words('english'))`` rebuilt for every word. Its slowness (the
stopword file is re-read for every word) is the point: do not optimise it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# The seed's pattern: A-z also spans [ \ ] ^ _ and the backtick, which it therefore kept.
SEED_PATTERN = "[^a-zA-z]"
# What the seed meant, and what the project's TextCleaner does.
FIXED_PATTERN = "[^a-zA-Z]"


def seed_clean(texts: Iterable[str], pattern: str = SEED_PATTERN) -> list[str]:
    """The seed's loop over ``texts``; ``pattern`` exists only to rerun it with the regex fixed."""
    import nltk
    from nltk.corpus import stopwords
    from nltk.stem.porter import PorterStemmer

    from review_sentiment.config import NLTK_DATA_DIR

    if str(NLTK_DATA_DIR) not in nltk.data.path:  # the package's stopword copy: no download
        nltk.data.path.insert(0, str(NLTK_DATA_DIR))
    corpus = []
    for text in texts:
        review = re.sub(pattern, " ", text)
        review = review.lower()
        review = review.split()
        ps = PorterStemmer()
        review = [ps.stem(word) for word in review if word not in set(stopwords.words("english"))]
        review = " ".join(review)
        corpus.append(review)
    return corpus
