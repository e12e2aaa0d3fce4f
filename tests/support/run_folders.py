"""Fake run folders for the housekeeping tests: an ingest snapshot, a blob, an age; and a digest
of a folder's names and bytes, to prove that a kept folder is kept whole."""

from __future__ import annotations

import hashlib
import os
from datetime import datetime
from pathlib import Path

import pandas as pd

from review_sentiment import schema


def fake_run_folder(root: Path, key: str, modified: datetime, texts: list[str], *, title: str = "",
                    blob_bytes: int = 50_000) -> Path:  # fmt: skip
    """``root/key`` with ``ingest/reviews.parquet`` (``texts``, each with ``title``) and a random
    ``train/weights.bin``; it and everything in it last modified at ``modified``."""
    run = root / key
    (run / "ingest").mkdir(parents=True)
    frame = pd.DataFrame(
        {schema.ID: range(len(texts)), schema.TITLE: [title] * len(texts), schema.TEXT: texts}
    )
    frame.to_parquet(run / "ingest" / "reviews.parquet", index=False)
    (run / "train").mkdir()
    (run / "train" / "weights.bin").write_bytes(os.urandom(blob_bytes))
    stamp = modified.timestamp()
    for path in [*run.rglob("*"), run]:
        os.utime(path, (stamp, stamp))
    return run


def folder_digest(folder: Path) -> str:
    """SHA-256 over the relative names and the bytes of everything under ``folder``."""
    h = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        h.update(str(path.relative_to(folder)).encode())
        if path.is_file():
            h.update(path.read_bytes())
    return h.hexdigest()
