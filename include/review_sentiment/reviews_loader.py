"""The reviews-loader service's command: seeds :mod:`review_sentiment.reviews_db`'s table.

    python -m review_sentiment.reviews_loader seed [--source URI | --source-env VAR] [--table NAME]
                                                   [--path FILE] [--weeks 12]

Exit codes: 0 loaded or nothing to do, 2 bad input (retrying cannot help: a missing, empty or
unreadable review file included), 1 database error. An empty table with no file to load fails,
so the services that wait for this job do not start on a stack whose first DAG run would fail.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from review_sentiment.errors import PipelineError
from review_sentiment.reviews_db import DEFAULT_WEEKS, seed
from review_sentiment.sources import (
    DEFAULT_TABLE,
    TABLE_PREFIX,
    check_source,
    is_postgres_source,
    postgres_url,
    redact,
    split_postgres_source,
)

EXIT_BAD_INPUT = 2  # as python -m review_sentiment: the input is wrong, retrying cannot help
EXIT_UNREACHABLE = 1


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())


def _parser() -> argparse.ArgumentParser:
    from review_sentiment.config import Settings

    parser = argparse.ArgumentParser(
        prog="python -m review_sentiment.reviews_loader",
        description="The stack's reviews database: a reviews table seeded once from the review file.",
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
        raise ValueError(f"not a postgresql:// URI: {redact(uri)!r}")
    dsn, table = split_postgres_source(uri)
    table = args.table or table
    check_source(f"{TABLE_PREFIX}{table}", [])
    return postgres_url(dsn, table)


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
    except OSError as exc:  # unreadable: a permission, a folder where the file should be
        print(
            f"reviews_db: error: cannot read the review file {args.path}: {_one_line(exc)}", file=sys.stderr
        )
        return EXIT_BAD_INPUT
    except psycopg2.OperationalError as exc:
        # Most often a PostgreSQL volume from before the reviews database (init scripts run on a
        # volume's first start only), or a REVIEWS_DB_PASSWORD changed since.
        print(
            f"reviews_db: error: cannot use {redact(split_postgres_source(source)[0])}: {_one_line(exc)} "
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
            f"reviews_db: error: {result.skipped} and {result.table} has no rows: set SENTIMENT_DATA_DIR "
            "in .env to the folder holding the review file (make secrets sets it to the project's data/)",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    print(result.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
