"""The stack's reviews database on a real PostgreSQL: ``deploy/postgres/init-reviews-database.sh``
makes the ``reviews`` role and database (and can run again), and ``reviews_db.seed`` fills the
table as that role, once, with ``ingested_at`` spread over 12 weeks; the command the compose job
runs says what it did, and fails (exit 1 or 2) only when the database or the file is wrong.

The review file is a synthetic one (``review_sentiment.synthetic``): no real review is needed.
"""

from __future__ import annotations

import csv
import gzip
import os
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg2
import pytest

from review_sentiment import schema
from review_sentiment.errors import DataContractError
from review_sentiment.reviews_db import arrival_time, load_table, seed
from review_sentiment.sources import read_table
from review_sentiment.synthetic import write_synthetic_csv
from scripts.local_stack.images import pg_bin
from tests.support.servers import PostgresServer

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
INIT_SCRIPT = ROOT / "deploy" / "postgres" / "init-reviews-database.sh"
ROWS = 600
WEEKS = 12
WEEK_S = 7 * 24 * 3600


def _init_script(postgres: PostgresServer, password: str) -> subprocess.CompletedProcess[str]:
    """The script as the postgres image runs it on a first start: psql as the superuser."""
    env = {
        **os.environ,
        "PATH": f"{Path(pg_bin('psql')).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PGHOST": "127.0.0.1",
        "PGPORT": str(postgres.port),
        "POSTGRES_USER": postgres.user,
        "REVIEWS_DB_PASSWORD": password,
    }
    return subprocess.run(["bash", str(INIT_SCRIPT)], env=env, capture_output=True, text=True, timeout=60)


def _query(url: str, statement: str, params: list | None = None) -> list[tuple]:
    conn = psycopg2.connect(url)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(statement, params)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()


@pytest.fixture(scope="module")
def reviews_db(postgres: PostgresServer) -> str:
    """The reviews database, made by the init script: its URL as the reviews role."""
    done = _init_script(postgres, "first-password")
    assert done.returncode == 0, done.stdout + done.stderr
    return postgres.url("reviews").replace(f"{postgres.user}@", "reviews@")


@pytest.fixture(scope="module")
def review_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_csv(tmp_path_factory.mktemp("reviews") / "synthetic_reviews.csv", ROWS, seed=7)


@pytest.fixture(scope="module")
def file_ids(review_file: Path) -> set[int]:
    """Review ids of the file, read with the csv module (not the code under test)."""
    with open(review_file, newline="", encoding="utf-8") as fh:
        return {int(row[""]) for row in csv.DictReader(fh)}


@pytest.fixture(scope="module")
def seeded(reviews_db: str, review_file: Path) -> dict:
    """The first seed and the second, as the stack's first and second start run them."""
    now = datetime.now(UTC)
    source = f"{reviews_db}?table=reviews"
    first = seed(review_file, source, weeks=WEEKS, now=now)
    rows = _query(reviews_db, "SELECT review_id, ingested_at FROM reviews ORDER BY review_id")
    second = seed(review_file, source, weeks=WEEKS, now=now + timedelta(days=1))
    after = _query(reviews_db, "SELECT review_id, ingested_at FROM reviews ORDER BY review_id")
    return {"now": now, "first": first, "second": second, "rows": rows, "after": after}


# --- the role and the database ---------------------------------------------------------------------
def test_the_init_script_makes_a_plain_login_role_and_its_own_database(
    reviews_db: str, postgres: PostgresServer
) -> None:
    superuser = postgres.url()
    [(login, superuser_flag, createdb, createrole)] = _query(
        superuser,
        "SELECT rolcanlogin, rolsuper, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = 'reviews'",
    )
    assert (login, superuser_flag, createdb, createrole) == (True, False, False, False)
    assert _query(superuser, "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'reviews'") == [
        ("reviews",)
    ]
    # Apart from the other roles: PUBLIC may not connect (as for Airflow's and MLflow's databases).
    _query(superuser, "DROP ROLE IF EXISTS stranger")
    _query(superuser, "CREATE ROLE stranger LOGIN")
    assert _query(superuser, "SELECT has_database_privilege('stranger', 'reviews', 'CONNECT')") == [(False,)]
    assert _query(superuser, "SELECT has_database_privilege('reviews', 'reviews', 'CONNECT')") == [(True,)]


def test_the_init_script_runs_again_and_sets_a_changed_password(
    reviews_db: str, postgres: PostgresServer
) -> None:
    """A volume made before the reviews database, or a changed REVIEWS_DB_PASSWORD."""
    query = "SELECT rolpassword FROM pg_authid WHERE rolname = 'reviews'"
    [(before,)] = _query(postgres.url(), query)
    again = _init_script(postgres, "second-password")
    assert again.returncode == 0, again.stdout + again.stderr
    [(after,)] = _query(postgres.url(), query)
    assert before
    assert after != before
    assert _query(postgres.url(), "SELECT count(*) FROM pg_database WHERE datname = 'reviews'") == [(1,)]


def test_the_init_script_refuses_to_run_without_the_password(postgres: PostgresServer) -> None:
    done = _init_script(postgres, "")
    assert done.returncode == 1
    assert "REVIEWS_DB_PASSWORD must be set" in done.stderr


# --- the seed --------------------------------------------------------------------------------------
def test_every_valid_review_of_the_file_is_loaded(seeded: dict, file_ids: set[int], reviews_db: str) -> None:
    first = seeded["first"]
    assert len(file_ids) == ROWS
    assert first.loaded == first.rows == ROWS
    assert {review_id for review_id, _ in seeded["rows"]} == file_ids
    # What the DAG's ingest reads: the same rows (it drops those without text itself).
    assert len(read_table(f"{reviews_db}?table=reviews")) == ROWS


def test_the_table_belongs_to_the_reviews_role(seeded: dict, reviews_db: str) -> None:
    assert _query(reviews_db, "SELECT tableowner FROM pg_tables WHERE tablename = 'reviews'") == [
        ("reviews",)
    ]


def test_ingested_at_spans_12_weeks_within_the_last_12(seeded: dict) -> None:
    now = seeded["now"]
    stamps = [stamp for _, stamp in seeded["rows"]]
    assert all(now - timedelta(weeks=WEEKS) < stamp <= now for stamp in stamps)
    weeks = [int((now - stamp).total_seconds() // WEEK_S) for stamp in stamps]
    counts = [weeks.count(week) for week in range(WEEKS)]
    assert sorted(set(weeks)) == list(range(WEEKS)), counts
    # An even share each week (ROWS / WEEKS = 50 expected).
    assert min(counts) >= 25, counts
    assert max(counts) <= 80, counts
    assert seeded["first"].weeks == WEEKS
    assert "spread over 12 weeks" in seeded["first"].summary()


def test_each_review_gets_the_arrival_time_of_its_id(seeded: dict) -> None:
    """Deterministic: the same id and load time give the same time, whatever the row order."""
    now = seeded["now"]
    assert all(stamp == arrival_time(review_id, now, WEEKS) for review_id, stamp in seeded["rows"])


def test_each_week_holds_about_the_file_s_label_balance(seeded: dict, reviews_db: str) -> None:
    """The hash spreads the classes evenly, so a weekly window does not look like label drift."""
    [(overall,)] = _query(reviews_db, "SELECT avg(recommended) FROM reviews")
    shares = _query(
        reviews_db,
        "SELECT floor(extract(epoch FROM %s - ingested_at) / %s) AS week, avg(recommended) "
        "FROM reviews GROUP BY week ORDER BY week",
        [seeded["now"], WEEK_S],
    )
    assert len(shares) == WEEKS
    assert all(abs(float(share) - float(overall)) < 0.15 for _, share in shares), (overall, shares)


def test_a_second_seed_loads_nothing_and_says_so(seeded: dict) -> None:
    second = seeded["second"]
    assert second.loaded == 0
    assert second.rows == ROWS
    assert seeded["after"] == seeded["rows"], "the second seed changed the table"
    assert "already has 600 rows" in second.summary()
    assert "nothing loaded" in second.summary()


def test_the_table_is_the_one_load_table_makes(seeded: dict, reviews_db: str, review_file: Path) -> None:
    """Column for column (names, types, nullability, defaults, key), so that ``load-table`` can
    later upsert into the seeded table and ingest reads both the same way."""
    load_table(review_file, f"{reviews_db}?table=reviews_by_load_table")
    columns = (
        "SELECT column_name, data_type, is_nullable, column_default FROM information_schema.columns "
        "WHERE table_name = %s ORDER BY ordinal_position"
    )
    key = (
        "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
        "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = %s::regclass AND i.indisprimary"
    )
    seeded_columns = _query(reviews_db, columns, ["reviews"])
    assert seeded_columns == _query(reviews_db, columns, ["reviews_by_load_table"])
    assert [c[0] for c in seeded_columns] == [*schema.COLUMNS, "ingested_at"]
    assert (
        _query(reviews_db, key, ["reviews"])
        == _query(reviews_db, key, ["reviews_by_load_table"])
        == [(schema.ID,)]
    )
    # load_table into the seeded table changes no row and no arrival time.
    assert load_table(review_file, f"{reviews_db}?table=reviews") == 0
    assert (
        _query(reviews_db, "SELECT review_id, ingested_at FROM reviews ORDER BY review_id") == seeded["rows"]
    )


def test_a_missing_file_loads_nothing_and_creates_no_table(reviews_db: str, tmp_path: Path) -> None:
    result = seed(tmp_path / "absent.csv.gz", f"{reviews_db}?table=reviews_absent")
    assert (result.loaded, result.rows) == (0, 0)
    assert result.skipped == f"no review file at {tmp_path / 'absent.csv.gz'}"
    assert _query(reviews_db, "SELECT to_regclass('reviews_absent')") == [(None,)]


def test_a_refused_file_creates_no_table(reviews_db: str, tmp_path: Path) -> None:
    broken = tmp_path / "reviews.csv.gz"
    broken.write_bytes(gzip.compress(b"not,the,header\n1,2,3\n"))
    with pytest.raises(DataContractError, match="missing columns"):
        seed(broken, f"{reviews_db}?table=reviews_refused")
    assert _query(reviews_db, "SELECT to_regclass('reviews_refused')") == [(None,)]


def test_two_seeds_at_once_load_the_file_once(reviews_db: str, review_file: Path) -> None:
    source = f"{reviews_db}?table=reviews_raced"
    results, errors = [], []
    barrier = threading.Barrier(2)

    def one() -> None:
        barrier.wait()
        try:
            results.append(seed(review_file, source))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    assert sorted(r.loaded for r in results) == [0, ROWS]
    assert _query(reviews_db, "SELECT count(*) FROM reviews_raced") == [(ROWS,)]


# --- the command the compose job runs ------------------------------------------------------------------
def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "review_sentiment.reviews_loader", "seed", *args],
        env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip


def test_the_job_loads_then_says_there_is_nothing_to_do(reviews_db: str, review_file: Path) -> None:
    args = ["--source-env", "SEED_URI", "--table", "reviews_cli", "--path", str(review_file), "--weeks", "12"]
    first = _cli(*args, env={"SEED_URI": reviews_db})
    second = _cli(*args, env={"SEED_URI": reviews_db})
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith(f"reviews_db: loaded {ROWS} reviews into reviews_cli in "), first.stdout
    assert "spread over 12 weeks" in first.stdout
    assert second.returncode == 0, second.stderr
    assert f"reviews_cli already has {ROWS} rows" in second.stdout
    assert second.stdout.rstrip().endswith("nothing loaded")


@pytest.mark.parametrize("what", ["missing", "empty", "unreadable"])
def test_the_job_fails_without_a_readable_file(reviews_db: str, tmp_path: Path, what: str) -> None:
    path = tmp_path / "reviews.csv"
    if what == "empty":
        path.write_bytes(b"")
    elif what == "unreadable":
        path.mkdir()  # a folder where the file should be: unreadable as a file, even to root
    done = _cli("--source", f"{reviews_db}?table=reviews_nofile_{what}", "--path", str(path))
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("reviews_db: error: "), lines
    assert str(path) in lines[0] or "empty" in lines[0], lines
    assert _query(reviews_db, f"SELECT to_regclass('reviews_nofile_{what}')") == [(None,)]


def test_the_job_fails_on_a_database_it_cannot_use_without_showing_the_password(
    postgres: PostgresServer, review_file: Path
) -> None:
    uri = f"postgresql://reviews:not-for-logs@127.0.0.1:{postgres.port}/no_such_database"
    done = _cli("--source-env", "SEED_URI", "--path", str(review_file), env={"SEED_URI": uri})
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert "no_such_database" in lines[0]
    assert "reviews:***@" in lines[0]
    assert "README, 'The reviews database'" in lines[0]
    assert "not-for-logs" not in done.stderr + done.stdout


def test_the_job_fails_on_a_refused_file(reviews_db: str, tmp_path: Path) -> None:
    broken = tmp_path / "reviews.csv"
    broken.write_text("a;b;c\n1;2;3\n")
    done = _cli("--source", f"{reviews_db}?table=reviews_badfile", "--path", str(broken))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "data contract violated" in done.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["--table", "reviews; DROP TABLE reviews"],
        ["--table", "a.b.c"],
        ["--table", "x&host=evil"],
        ["?table=reviews;DROP"],
        ["?table=a.b.c"],
    ],
    ids=lambda args: " ".join(args),
)
def test_the_job_refuses_a_table_name_that_is_not_an_identifier(reviews_db: str, args: list[str]) -> None:
    query = args[0] if args[0].startswith("?") else ""
    done = _cli("--source", f"{reviews_db}{query}", *([] if query else args))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "not a plain [schema.]table identifier" in done.stderr
