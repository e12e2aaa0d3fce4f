"""Stable digests of texts, to prove that no text sits in two splits."""

from __future__ import annotations

import hashlib

import pandas as pd


def text_hashes(texts: pd.Series) -> set[str]:
    """SHA-1 of each text (stable across processes, unlike ``hash``)."""
    return set(texts.map(lambda t: hashlib.sha1(t.encode("utf-8")).hexdigest()))
