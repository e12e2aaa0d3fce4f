"""Bad input from a real PostgreSQL source: SQL-looking and pathological text round-trips as data,
NUL rows are kept out of the table, and an empty table, a missing table or a revoked SELECT each
fail ingest with one clear line and nothing written."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import psycopg2
import pytest

from review_sentiment import schema
from review_sentiment.errors import DataContractError
from review_sentiment.ingest import ingest
from review_sentiment.reviews_db import load_table
from tests.data.test_malformed_input import csv_text, nul_rows, rows
from tests.data.test_pathological_text import PATHOLOGICAL, long_review
from tests.support.servers import PostgresServer

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def database(postgres: PostgresServer) -> str:
    url = postgres.create_database("bad_input")
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        # A bystander table: an injected DROP or DELETE would show here.
        cur.execute("CREATE TABLE canary (id integer PRIMARY KEY)")
        cur.execute("INSERT INTO canary VALUES (1), (2), (3)")
    return url


def _query(url: str, statement: str) -> list[tuple]:
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute(statement)
        return cur.fetchall()


def _write(tmp_path: Path, rows_: list[dict[str, str]]) -> Path:
    path = tmp_path / "reviews.csv"
    path.write_text(csv_text(rows_), encoding="utf-8", newline="")
    return path


def test_sql_looking_and_pathological_text_round_trips_as_data(database: str, tmp_path: Path) -> None:
    base = rows()
    texts = {**PATHOLOGICAL, "1mb": long_review(), "quote-only": "'", "semicolons": ";;;--"}
    expected = {}
    for index, (case, text) in enumerate(texts.items()):
        base[index] = {**base[index], "Review Text": text, "Title": f"{case}'); DROP TABLE canary; --"}
        expected[int(base[index]["Unnamed: 0"])] = (text, base[index]["Title"])
    source = f"{database}?table=public.reviews_text"

    loaded = load_table(_write(tmp_path, base), source)
    snapshot = ingest(source, tmp_path / "ingest")

    assert loaded == len(base)
    snap = pd.read_parquet(snapshot).set_index(schema.ID)
    for review_id, (text, title) in expected.items():
        assert snap.loc[review_id, schema.TEXT] == text, review_id
        assert snap.loc[review_id, schema.TITLE] == title, review_id
    stored = dict(_query(database, "SELECT review_id, review_text FROM reviews_text"))
    assert all(stored[i] == text for i, (text, _) in expected.items())
    assert _query(database, "SELECT count(*) FROM canary") == [(3,)]
    # A second load of the same file changes nothing: the upsert compares the values as data.
    assert load_table(_write(tmp_path, base), source) == 0


def test_rows_with_a_nul_byte_are_not_loaded(database: str, tmp_path: Path) -> None:
    bad = nul_rows(2)
    source = f"{database}?table=public.reviews_nul"
    assert load_table(_write(tmp_path, bad), source) == len(bad) - 2
    ids = {row[0] for row in _query(database, "SELECT review_id FROM reviews_nul")}
    assert int(bad[10]["Unnamed: 0"]) not in ids
    assert int(bad[17]["Unnamed: 0"]) not in ids


def test_too_many_nul_rows_load_nothing(database: str, tmp_path: Path) -> None:
    source = f"{database}?table=public.reviews_nul_many"
    with pytest.raises(DataContractError, match=r"5 of 400 rows \(1\.25%\) quarantined for a NUL byte"):
        load_table(_write(tmp_path, nul_rows(5)), source)
    assert _query(database, "SELECT to_regclass('public.reviews_nul_many') IS NULL") == [(True,)]


def _refused(source: str, output: Path) -> tuple[DataContractError, float]:
    started = time.perf_counter()
    with pytest.raises(DataContractError) as caught:
        ingest(source, output)
    seconds = time.perf_counter() - started
    message = str(caught.value)
    assert "\n" not in message, message
    assert not output.exists() or list(output.iterdir()) == []
    return caught.value, seconds


def test_empty_table_is_refused(database: str, tmp_path: Path) -> None:
    source = f"{database}?table=public.reviews_empty"
    assert load_table(_write(tmp_path, []), source) == 0
    error, seconds = _refused(source, tmp_path / "out")
    assert error.violations == ["the table is empty"]
    assert str(error) == "data contract violated by table public.reviews_empty (1): the table is empty"
    assert seconds < 10


def test_missing_table_is_refused(database: str, tmp_path: Path) -> None:
    error, seconds = _refused(f"{database}?table=public.no_such_table", tmp_path / "out")
    assert error.violations == ['relation "public.no_such_table" does not exist']
    assert seconds < 10


def test_revoked_select_is_refused(database: str, postgres: PostgresServer, tmp_path: Path) -> None:
    source = f"{database}?table=public.reviews_private"
    load_table(_write(tmp_path, rows()), source)
    with psycopg2.connect(database) as conn, conn.cursor() as cur:
        cur.execute("DROP ROLE IF EXISTS reader")
        cur.execute("CREATE ROLE reader LOGIN")
        cur.execute("GRANT SELECT ON reviews_private TO reader")
    reader = (
        postgres.url("bad_input").replace(f"{postgres.user}@", "reader@") + "?table=public.reviews_private"
    )
    assert len(pd.read_parquet(ingest(reader, tmp_path / "granted"))) > 0  # the role itself works

    with psycopg2.connect(database) as conn, conn.cursor() as cur:
        cur.execute("REVOKE SELECT ON reviews_private FROM reader")
    error, seconds = _refused(reader, tmp_path / "revoked")
    assert error.violations == ["permission denied for table reviews_private"]
    assert str(error).startswith("data contract violated by table public.reviews_private (1): ")
    assert seconds < 10
