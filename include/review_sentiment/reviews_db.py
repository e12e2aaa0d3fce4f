"""The stack's reviews database: a ``reviews`` table seeded once from the review file.

``docker compose`` and ``make stack`` run ``seed`` as the one-shot ``reviews-loader`` service,
as the ``reviews`` role and through the same URI as the Airflow connection ``reviews_db``
(``AIRFLOW_CONN_REVIEWS_DB``), before the scheduler starts; the stack's DAG then reads the table
(``SENTIMENT_SOURCE=postgres:reviews``).

    python -m review_sentiment.reviews_loader seed [--source URI | --source-env VAR] [--table NAME]
                                                   [--path FILE] [--weeks 12]

(the reviews-loader's command, in :mod:`review_sentiment.reviews_loader`).

The table's one definition (:func:`table_ddl`: the original columns, keyed on ``review_id``,
plus ``ingested_at``) and its writers live here: :func:`load_table` upserts a file's reviews
(``python -m review_sentiment load-table``), :func:`seed` fills an empty table once; both load
the rows :func:`loadable_reviews` gives. A seeded review's ``ingested_at`` is spread over the
last ``weeks`` weeks (:func:`arrival_time`), so that a window on ``ingested_at`` sees weekly
batches. The whole seed is one transaction.

Idempotent: a table that already has rows is left as it is (and the job says so). A missing
review file is a warning, not a failure (the stack may read a table of your own); a database
that refuses the connection, or a file that breaks the data contract, fails the job, and with
it the start of the services that wait for it.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from review_sentiment import schema
from review_sentiment.errors import DataContractError
from review_sentiment.sources import read_file, split_postgres_source
from review_sentiment.validate import quarantine_rows, quarantine_violation, validate_reviews

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

DEFAULT_WEEKS = 12
WEEK = timedelta(weeks=1)


# --- The table ---------------------------------------------------------------------------------


def load_table(path: str | Path, source: str, ingested_at: datetime | None = None) -> int:
    """Create the table if needed and upsert the file's reviews into it, keyed on review id.

    Re-running with the same file changes nothing; a changed row gets the new values and a new
    ``ingested_at``. Rows without text are loaded too: ingest drops and counts them.

    Args:
        path: A CSV/Parquet file in the original schema.
        source: ``postgresql://user@host:port/db?table=name``.
        ingested_at: Timestamp for new or changed rows (default: now).

    Returns:
        The number of rows inserted or changed.
    """
    import psycopg2
    from psycopg2 import sql

    reviews = loadable_reviews(path)
    dsn, table = split_postgres_source(source)
    ident = sql.Identifier(*table.split("."))
    others = [c for c in schema.COLUMNS if c != schema.ID]
    # A row whose values did not change keeps its ingested_at: a re-load is not a new arrival.
    update = sql.SQL(
        "DO UPDATE SET {sets}, ingested_at = EXCLUDED.ingested_at "
        "WHERE ({old}) IS DISTINCT FROM ({new}) RETURNING 1"
    ).format(
        sets=sql.SQL(", ").join(sql.SQL("{c} = EXCLUDED.{c}").format(c=sql.Identifier(c)) for c in others),
        old=sql.SQL(", ").join(sql.SQL("{t}.{c}").format(t=ident, c=sql.Identifier(c)) for c in others),
        new=sql.SQL(", ").join(sql.SQL("EXCLUDED.{c}").format(c=sql.Identifier(c)) for c in others),
    )
    stamp = ingested_at or datetime.now().astimezone()
    # closing(): psycopg2's own ``with conn`` ends the transaction but leaves the connection open.
    with closing(psycopg2.connect(dsn)) as conn, conn, conn.cursor() as cur:
        changed = _write_reviews(cur, ident, reviews, lambda _review_id: stamp, update)
    return len(changed)


def _write_reviews(
    cur: Any, ident: Any, reviews: pd.DataFrame, arrival: Callable[[int], datetime], on_conflict: Any
) -> list[tuple]:
    """Create the table if needed and insert ``reviews`` (``on_conflict`` for an id already
    there); the rows the statement returns."""
    from psycopg2 import sql
    from psycopg2.extras import execute_values

    cur.execute(table_ddl(ident))
    insert = sql.SQL("INSERT INTO {t} ({cols}, ingested_at) VALUES %s ON CONFLICT ({key}) {action}").format(
        t=ident,
        cols=sql.SQL(", ").join(sql.Identifier(c) for c in schema.COLUMNS),
        key=sql.Identifier(schema.ID),
        action=on_conflict,
    )
    records = table_records(reviews, arrival)
    return execute_values(cur, insert, records, page_size=1000, fetch=True)


def loadable_reviews(path: str | Path) -> pd.DataFrame:
    """The rows of ``path`` a reviews table takes: the contract checked, NUL rows left out (at
    most 1%: PostgreSQL text cannot hold a NUL byte), rows without text kept (ingest drops and
    counts them).

    Raises:
        DataContractError: the file breaks the data contract.
    """
    raw, quarantined = quarantine_rows(read_file(path))
    too_many = quarantine_violation(len(quarantined), len(raw) + len(quarantined))
    if too_many:
        raise DataContractError([too_many], str(path))
    if len(quarantined):
        log.warning(
            "not loading %d rows with a NUL byte (data rows %s)",
            len(quarantined),
            quarantined["_row"].tolist()[:10],
        )
    reviews, _ = validate_reviews(raw, source=str(path), min_rows=0, keep_empty_text=True)
    return reviews


def table_ddl(ident: Any) -> Any:
    """``CREATE TABLE IF NOT EXISTS`` for a reviews table: the original columns keyed on review
    id, plus ``ingested_at`` (the one definition, for :func:`load_table` and :func:`seed`)."""
    from psycopg2 import sql

    int_cols = set(schema.INTEGER_COLUMNS)
    columns = sql.SQL(", ").join(
        sql.SQL("{} {}").format(
            sql.Identifier(c),
            sql.SQL("bigint PRIMARY KEY" if c == schema.ID else ("integer" if c in int_cols else "text")),
        )
        for c in schema.COLUMNS
    )
    return sql.SQL(
        "CREATE TABLE IF NOT EXISTS {t} ({cols}, ingested_at timestamptz NOT NULL DEFAULT now())"
    ).format(t=ident, cols=columns)


def table_records(reviews: pd.DataFrame, arrival: Callable[[int], datetime]) -> list[tuple]:
    """One row tuple per review, in ``table_ddl``'s column order, with ``arrival(review_id)``
    as its ``ingested_at``."""
    int_cols = set(schema.INTEGER_COLUMNS)
    id_index = schema.COLUMNS.index(schema.ID)

    def cell(column: str, value: object) -> object:
        if _is_na(value):
            return None
        return int(value) if column in int_cols else value

    records = []
    for row in reviews.loc[:, list(schema.COLUMNS)].itertuples(index=False, name=None):
        cells = tuple(cell(c, v) for c, v in zip(schema.COLUMNS, row, strict=True))
        records.append((*cells, arrival(cells[id_index])))
    return records


def _is_na(value: object) -> bool:
    import pandas as pd

    return value is None or (not isinstance(value, str) and bool(pd.isna(value)))


# --- The seed ----------------------------------------------------------------------------------


def arrival_time(review_id: int, now: datetime, weeks: int = DEFAULT_WEEKS) -> datetime:
    """The ``ingested_at`` a seeded review gets: ``now`` minus an age in ``[0, weeks)`` weeks.

    The age comes from a hash of the review id, not from the file's row order. The file's order
    is not arrival order (the data set has no dates), and consecutive rows would make each week
    a block of neighbouring rows; a hash gives every week an even, order-free share of the file
    (about the same label balance each week, so a weekly window does not look like label drift),
    and a review's week does not depend on which other rows the file holds. ``blake2b`` (not
    Python's salted ``hash``) keeps it the same on every machine and run.

    Args:
        review_id: The review's id (the file's first column).
        now: The load time: the newest possible arrival.
        weeks: How many weeks back arrivals go.

    Returns:
        A time in ``(now - weeks weeks, now]``.
    """
    digest = hashlib.blake2b(str(int(review_id)).encode(), digest_size=8).digest()
    fraction = int.from_bytes(digest, "big") / 2**64  # uniform in [0, 1)
    return now - fraction * weeks * WEEK


def week_of(stamp: datetime, now: datetime) -> int:
    """Whole weeks between ``stamp`` and ``now``: 0 for the last 7 days, 1 for the 7 before..."""
    return int((now - stamp) / WEEK)


@dataclass(frozen=True)
class SeedResult:
    """What :func:`seed` found and did."""

    table: str
    loaded: int  # rows inserted by this call
    rows: int  # rows in the table afterwards (0 when skipped)
    first: datetime | None  # oldest ingested_at in the table
    last: datetime | None  # newest ingested_at in the table
    weeks: int  # distinct weeks (counted back from the load time) among the loaded rows
    seconds: float
    skipped: str = ""  # why nothing was loaded, if nothing was

    def summary(self) -> str:
        """One line for the job's log."""
        span = (
            f"ingested_at {self.first:%Y-%m-%d %H:%M} to {self.last:%Y-%m-%d %H:%M} UTC" if self.last else ""
        )
        if self.loaded:
            return (
                f"reviews_db: loaded {self.loaded} reviews into {self.table} in {self.seconds:.1f} s, "
                f"spread over {self.weeks} weeks ({span})"
            )
        if self.rows:
            return f"reviews_db: {self.table} already has {self.rows} rows ({span}); nothing loaded"
        return f"reviews_db: nothing loaded into {self.table}: {self.skipped}"


def seed(
    path: str | Path, source: str, *, weeks: int = DEFAULT_WEEKS, now: datetime | None = None
) -> SeedResult:
    """Create the table and load the file into it, unless the table already has rows.

    Args:
        path: The review file (CSV, optionally gzip, or Parquet, in the original schema).
        source: ``postgresql://user[:password]@host:port/db[?table=name]`` (table default
            ``reviews``); the table is created by, and so owned by, the connecting role.
        weeks: Spread ``ingested_at`` over this many weeks before ``now``.
        now: The load time (default: the current time, UTC).

    Returns:
        What was found and done. Nothing is loaded (``skipped`` says why) when the table already
        has rows or the file is missing; a missing file creates no table.

    Raises:
        DataContractError: the file breaks the data contract (nothing is created).
        ValueError: ``weeks`` is not positive.
        psycopg2.Error: the database cannot be reached or refuses the statements.
    """
    import psycopg2
    from psycopg2 import sql

    if weeks < 1:
        raise ValueError(f"weeks must be at least 1, got {weeks}")
    started = time.monotonic()
    now = now or datetime.now(UTC)
    dsn, table = split_postgres_source(source)
    ident = sql.Identifier(*table.split("."))
    with closing(psycopg2.connect(dsn)) as conn, conn, conn.cursor() as cur:
        existing = _lock_and_count(cur, conn, table, ident)
        if existing[0]:
            return SeedResult(table, 0, *existing, weeks=0, seconds=time.monotonic() - started)
        if not Path(path).is_file():
            return SeedResult(
                table, 0, 0, None, None, 0, time.monotonic() - started, f"no review file at {path}"
            )
        reviews = loadable_reviews(path)  # before any DDL: a refused file leaves no table behind
        returned = _write_reviews(
            cur,
            ident,
            reviews,
            lambda review_id: arrival_time(review_id, now, weeks),
            sql.SQL("DO NOTHING RETURNING ingested_at"),
        )
        rows, first, last = _stats(cur, ident)
    distinct = len({week_of(stamp, now) for (stamp,) in returned})
    return SeedResult(table, len(returned), rows, first, last, distinct, time.monotonic() - started)


def _lock_and_count(
    cur: Any, conn: Any, table: str, ident: Any
) -> tuple[int, datetime | None, datetime | None]:
    """Take the table's seed lock for this transaction; then :func:`_stats` (zeros: no table)."""
    # One seed of a table at a time, until this transaction ends: a second loader started at
    # the same moment waits here, then finds the rows (two concurrent CREATE TABLE IF NOT
    # EXISTS of one name can fail on PostgreSQL's catalog).
    cur.execute("SELECT pg_advisory_xact_lock(hashtext('review_sentiment.reviews_db ' || %s))", [table])
    cur.execute("SELECT to_regclass(%s) IS NOT NULL", [ident.as_string(conn)])
    return _stats(cur, ident) if cur.fetchone()[0] else (0, None, None)


def _stats(cur: object, ident: object) -> tuple[int, datetime | None, datetime | None]:
    """Rows, oldest and newest ``ingested_at`` of the table."""
    from psycopg2 import sql

    cur.execute(sql.SQL("SELECT count(*), min(ingested_at), max(ingested_at) FROM {t}").format(t=ident))
    rows, first, last = cur.fetchone()
    return rows, first and first.astimezone(UTC), last and last.astimezone(UTC)
