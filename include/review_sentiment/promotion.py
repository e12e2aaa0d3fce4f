"""Serialise promotions: MLflow aliases are last-writer-wins, so the read-compare-set of the
champion alias must run under one lock per registered model.

Backends: a PostgreSQL advisory lock when ``SENTIMENT_LOCK_URI`` is a PostgreSQL URI (works
across hosts, e.g. Celery workers), else an ``fcntl`` lock file under the artifact root (one
host: ``make run``, LocalExecutor).
"""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from review_sentiment.config import Settings

log = logging.getLogger(__name__)


@contextmanager
def promotion_lock(model_name: str, *, lock_uri: str | None = None) -> Iterator[None]:
    """Hold the promotion lock of ``model_name`` for the ``with`` body.

    Args:
        model_name: Registered model whose aliases are about to change.
        lock_uri: Where the lock lives; default ``SENTIMENT_LOCK_URI``, else a lock file under
            the artifact root.
    """
    lock_uri = lock_uri if lock_uri is not None else os.environ.get("SENTIMENT_LOCK_URI", "")
    path = Path(lock_uri) if lock_uri else Settings.from_env().artifact_root / "locks" / f"{model_name}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
