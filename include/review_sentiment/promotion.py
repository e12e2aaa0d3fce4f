"""Serialise promotions: MLflow aliases are last-writer-wins, so the read-compare-set of the
champion alias must run under one lock per registered model.

Backends: a PostgreSQL advisory lock when the lock URI (``Settings.lock_uri``) is a PostgreSQL
URI (works across hosts, e.g. Celery workers), else an ``fcntl`` lock file (one host: ``make
run``, LocalExecutor). Both are released by the operating system or the server when their holder
dies: a killed process closes its file and its database session.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from review_sentiment.config import DEFAULT_LOCK_TIMEOUT_S
from review_sentiment.errors import PipelineError
from review_sentiment.sources import is_postgres_source, libpq_url

log = logging.getLogger(__name__)

_FILE_POLL_S = 0.1


class PromotionLockTimeout(PipelineError):
    """Another promotion of the same model held the lock for longer than the timeout."""


def lock_key(model_name: str) -> int:
    """The advisory-lock key of ``model_name``: a signed 64-bit integer, the same in every process.

    Python's ``hash`` is salted per process, so the key comes from a fixed digest instead; the
    prefix keeps it apart from advisory locks other applications take on the same database.
    """
    digest = hashlib.blake2b(f"review_sentiment.promotion:{model_name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


@contextmanager
def promotion_lock(
    model_name: str, *, lock_uri: str | Path, timeout: float = DEFAULT_LOCK_TIMEOUT_S
) -> Iterator[None]:
    """Hold the promotion lock of ``model_name`` for the ``with`` body.

    Args:
        model_name: Registered model whose aliases are about to change.
        lock_uri: Where the lock lives: a ``postgresql://`` (or ``postgresql+psycopg2://``) URI
            takes a PostgreSQL advisory lock; anything else is a lock file's path.
        timeout: Longest wait for the lock in seconds.

    Raises:
        PromotionLockTimeout: the lock stayed taken for ``timeout`` seconds.
    """
    where = str(lock_uri)
    if is_postgres_source(where):
        with _advisory_lock(model_name, where, float(timeout)):
            yield
        return
    with _file_lock(model_name, Path(where), float(timeout)):
        yield


@contextmanager
def _file_lock(model_name: str, path: Path, wait: float) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise PromotionLockTimeout(
                        f"promotion lock of {model_name} ({path}) still taken after {wait:.0f} s"
                    ) from None
                time.sleep(_FILE_POLL_S)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _connect(lock_uri: str) -> Any:
    import psycopg2

    dsn = libpq_url(lock_uri)
    # Keepalives: a holder cut off by the network (not only a killed one) loses its session, and
    # with it the lock, within about a minute instead of the kernel's two hours.
    return psycopg2.connect(
        dsn,
        connect_timeout=10,
        application_name="review_sentiment promotion lock",
        keepalives=1,
        keepalives_idle=30,
        keepalives_interval=10,
        keepalives_count=3,
    )


@contextmanager
def _advisory_lock(model_name: str, lock_uri: str, wait: float) -> Iterator[None]:
    """A session-level advisory lock on a connection of its own, held for the ``with`` body."""
    import psycopg2.errors

    key = lock_key(model_name)
    conn = _connect(lock_uri)
    try:
        conn.autocommit = True  # session-level lock: no transaction left open while the body runs
        with conn.cursor() as cur:
            # lock_timeout bounds the wait inside the server, so the wait queue stays fair (FIFO)
            # where a client polling pg_try_advisory_lock could be overtaken again and again.
            cur.execute("SELECT set_config('lock_timeout', %s, false)", (f"{max(1, int(wait * 1000))}ms",))
            started = time.monotonic()
            try:
                cur.execute("SELECT pg_advisory_lock(%s)", (key,))
            except psycopg2.errors.LockNotAvailable:
                raise PromotionLockTimeout(
                    f"promotion lock of {model_name} (PostgreSQL advisory lock {key}) still taken "
                    f"after {wait:.0f} s"
                ) from None
            log.info("promotion lock of %s taken after %.1f s", model_name, time.monotonic() - started)
        try:
            yield
        finally:
            # Closing the session frees the lock anyway; the explicit unlock only says so at once,
            # and a lost connection (the lock went with it) must not hide the body's own error.
            try:
                with conn.cursor() as cur:
                    cur.execute("SELECT pg_advisory_unlock(%s)", (key,))
            except psycopg2.Error as exc:
                log.warning(
                    "promotion lock of %s: unlock failed (%s); the session's end frees it", model_name, exc
                )
    finally:
        conn.close()
