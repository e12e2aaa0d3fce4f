"""The stack's reviews database: a ``reviews`` table seeded once from the review file.

``docker compose`` and ``make stack`` run ``seed`` as the one-shot ``reviews-loader`` service,
as the ``reviews`` role and through the same URI as the Airflow connection ``reviews_db``
(``AIRFLOW_CONN_REVIEWS_DB``), before the scheduler starts; the stack's DAG then reads the table
(``SENTIMENT_SOURCE=postgres:reviews``).

    python -m review_sentiment.reviews_db seed [--source URI | --source-env VAR] [--table NAME]
                                               [--path FILE] [--weeks 12]

The table is the one :func:`review_sentiment.ingest.load_table` makes (the original columns,
keyed on ``review_id``, plus ``ingested_at``) and holds the same rows it would load. Each
review's ``ingested_at`` is spread over the last ``weeks`` weeks (:func:`arrival_time`), so
that a window on ``ingested_at`` sees weekly batches. The whole seed is one transaction.

Idempotent: a table that already has rows is left as it is (and the job says so). A missing
review file is a warning, not a failure (the stack may read a table of your own); a database
that refuses the connection, or a file that breaks the data contract, fails the job, and with
it the start of the services that wait for it.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from review_sentiment import schema
from review_sentiment.errors import PipelineError
from review_sentiment.ingest import (
    DEFAULT_TABLE,
    TABLE_PREFIX,
    check_source,
    is_postgres_source,
    loadable_reviews,
    split_postgres_source,
    table_ddl,
    table_records,
)

DEFAULT_WEEKS = 12
WEEK = timedelta(weeks=1)
EXIT_BAD_INPUT = 2  # as python -m review_sentiment: the input is wrong, retrying cannot help
EXIT_UNREACHABLE = 1


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
    from psycopg2.extras import execute_values

    if weeks < 1:
        raise ValueError(f"weeks must be at least 1, got {weeks}")
    started = time.monotonic()
    now = now or datetime.now(UTC)
    dsn, table = split_postgres_source(source)
    ident = sql.Identifier(*table.split("."))
    # closing(): psycopg2's own ``with conn`` ends the transaction but leaves the connection open.
    with closing(psycopg2.connect(dsn)) as conn, conn, conn.cursor() as cur:
        # One seed of a table at a time, until this transaction ends: a second loader started at
        # the same moment waits here, then finds the rows (two concurrent CREATE TABLE IF NOT
        # EXISTS of one name can fail on PostgreSQL's catalog).
        cur.execute("SELECT pg_advisory_xact_lock(hashtext('review_sentiment.reviews_db ' || %s))", [table])
        cur.execute("SELECT to_regclass(%s) IS NOT NULL", [ident.as_string(conn)])
        if cur.fetchone()[0]:
            existing = _stats(cur, ident)
            if existing[0]:
                return SeedResult(table, 0, *existing, weeks=0, seconds=time.monotonic() - started)
        if not Path(path).is_file():
            return SeedResult(
                table, 0, 0, None, None, 0, time.monotonic() - started, f"no review file at {path}"
            )
        reviews = loadable_reviews(path)  # before any DDL: a refused file leaves no table behind
        cur.execute(table_ddl(ident))
        records = table_records(reviews, lambda review_id: arrival_time(review_id, now, weeks))
        insert = sql.SQL(
            "INSERT INTO {t} ({cols}, ingested_at) VALUES %s "
            "ON CONFLICT ({key}) DO NOTHING RETURNING ingested_at"
        ).format(
            t=ident,
            cols=sql.SQL(", ").join(sql.Identifier(c) for c in schema.COLUMNS),
            key=sql.Identifier(schema.ID),
        )
        stamps = [row[0] for row in execute_values(cur, insert, records, page_size=1000, fetch=True)]
        rows, first, last = _stats(cur, ident)
    distinct = len({week_of(stamp, now) for stamp in stamps})
    return SeedResult(table, len(stamps), rows, first, last, distinct, time.monotonic() - started)


def _stats(cur: object, ident: object) -> tuple[int, datetime | None, datetime | None]:
    """Rows, oldest and newest ``ingested_at`` of the table."""
    from psycopg2 import sql

    cur.execute(sql.SQL("SELECT count(*), min(ingested_at), max(ingested_at) FROM {t}").format(t=ident))
    rows, first, last = cur.fetchone()
    return rows, first and first.astimezone(UTC), last and last.astimezone(UTC)


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@")))
    return url


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())


# --- command line ------------------------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    from review_sentiment.config import Settings

    parser = argparse.ArgumentParser(
        prog="python -m review_sentiment.reviews_db", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("seed", help="create the reviews table and load the review file, unless it has rows")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "--source", help="postgresql://user@host:port/db[?table=name] (PGPASSWORD for the password)"
    )
    where.add_argument(
        "--source-env",
        metavar="VAR",
        help="read that URI from this environment variable, e.g. AIRFLOW_CONN_REVIEWS_DB",
    )
    p.add_argument("--table", help=f"[schema.]table (default: the URI's ?table=, else {DEFAULT_TABLE})")
    p.add_argument(
        "--path", type=Path, default=Settings.from_env().reviews_path, help="default: $REVIEWS_PATH"
    )
    p.add_argument("--weeks", type=int, default=DEFAULT_WEEKS, help="spread ingested_at over this many weeks")
    return parser


def _source(args: argparse.Namespace) -> str:
    """The URI to seed, its table (``--table``, else the URI's) checked as a plain identifier."""
    uri = os.environ.get(args.source_env, "") if args.source_env else args.source
    if not uri:
        raise ValueError(f"{args.source_env} is not set")
    if not is_postgres_source(uri):
        raise ValueError(f"not a postgresql:// URI: {_redacted(uri)!r}")
    dsn, table = split_postgres_source(uri)
    table = args.table or table
    check_source(f"{TABLE_PREFIX}{table}", [])
    return f"{dsn}{'&' if '?' in dsn else '?'}table={table}"


def main(argv: list[str] | None = None) -> int:
    """``seed``; returns the exit code: 0 loaded or nothing to do, 2 bad input, 1 database error."""
    import psycopg2

    args = _parser().parse_args(argv)
    try:
        source = _source(args)
        result = seed(args.path, source, weeks=args.weeks)
    except (PipelineError, ValueError) as exc:
        print(f"reviews_db: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except psycopg2.OperationalError as exc:
        # Most often a PostgreSQL volume from before the reviews database (init scripts run on a
        # volume's first start only), or a REVIEWS_DB_PASSWORD changed since.
        print(
            f"reviews_db: error: cannot use {_redacted(split_postgres_source(source)[0])}: {_one_line(exc)} "
            "(a PostgreSQL volume made before the reviews database has no reviews role: "
            "see README, 'The reviews database')",
            file=sys.stderr,
        )
        return EXIT_UNREACHABLE
    except psycopg2.Error as exc:
        print(f"reviews_db: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_UNREACHABLE
    if result.skipped:
        print(
            f"{result.summary()}. WARNING: a postgres:{result.table} source has nothing to read "
            "until the table has rows (this job loads it on the next start if the file is there)",
            file=sys.stderr,
        )
    else:
        print(result.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
