"""The stack's reviews database, live: ``make stack`` (the session's stack) ran the one-shot
``reviews-loader`` before the scheduler, the ``reviews`` table holds the review file's rows spread
over 12 weeks, the Airflow connection ``reviews_db`` resolves through the stack's own environment
and reads the table as the ``reviews`` role, and the DAG reads the table by default.

One more, short ``up`` of its own: a review file that breaks the data contract fails the loader,
so the scheduler never starts and ``make stack`` says why.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import psycopg2
import pytest

from review_sentiment.sources import read_table
from scripts.local_stack.compose import read_env_file
from scripts.local_stack.stack import Stack
from tests.stack.airflow_api import DAG_ID, FinishedRun
from tests.stack.conftest import ROOT, RunningStack, report
from tests.support.local_stack import gen_secrets, leftovers, run_script
from tests.support.servers import free_port

pytestmark = [pytest.mark.slow, pytest.mark.integration]

WEEKS = 12
LOADED = re.compile(
    r"^reviews_db: loaded (\d+) reviews into reviews in ([\d.]+) s, spread over (\d+) weeks", re.M
)
ALREADY = re.compile(r"^reviews_db: reviews already has (\d+) rows .*; nothing loaded$", re.M)


def _query(uri: str, statement: str, params: list | None = None) -> list[tuple]:
    conn = psycopg2.connect(uri)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(statement, params)
            return cur.fetchall()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def connection(running_stack: RunningStack) -> dict:
    """``airflow connections get reviews_db`` through ``python -m scripts.local_stack airflow`` (the CLI with
    airflow-scheduler's environment, where the DAG's tasks run)."""
    argv = [sys.executable, "-m", "scripts.local_stack", "airflow", "connections", "get", "reviews_db"]
    done = subprocess.run([*argv, "-o", "json"], env=running_stack.session.env, cwd=ROOT, capture_output=True,
                          text=True, timeout=300, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    [conn] = json.loads(done.stdout)
    return conn


@pytest.fixture(scope="module")
def file_rows(real_reviews_path: Path) -> int:
    """Rows of the review file the session copied in (every row of the real file is valid)."""
    return len(pd.read_csv(real_reviews_path, dtype=str, keep_default_na=False))


def test_the_loader_ran_once_and_then_found_the_rows(
    running_stack: RunningStack, file_rows: int, pytestconfig: pytest.Config
) -> None:
    stack = running_stack.stack
    info = stack.supervisor.info()["reviews-loader"]
    assert (info["statename"], info["exitstatus"]) == ("EXITED", 0), info
    log = (stack.logs / "reviews-loader.log").read_text()
    loaded = LOADED.findall(log)
    assert len(loaded) == 1, log[-3000:]
    rows, seconds, weeks = loaded[0]
    assert (int(rows), int(weeks)) == (file_rows, WEEKS)
    # Each later `make stack` (the Celery test runs it twice) ran the job again: nothing loaded.
    starts = len(re.findall(r"^--- ", log, re.M))  # scripts/session_exec.py's line at each start
    assert [int(n) for n in ALREADY.findall(log)] == [file_rows] * (starts - 1), log[-3000:]
    report(
        pytestconfig,
        f"stack: reviews-loader loaded {rows} reviews in {float(seconds):.1f} s (seed), "
        f"spread over {weeks} weeks; started {starts} times, loaded once",
    )


def test_the_scheduler_started_after_the_loader_had_finished(running_stack: RunningStack) -> None:
    """compose's service_completed_successfully, as supervisord logged the first start."""
    lines = (running_stack.stack.logs / "supervisord.log").read_text().splitlines()
    loader_done = next(i for i, line in enumerate(lines) if "exited: reviews-loader (exit status 0" in line)
    scheduler = next(i for i, line in enumerate(lines) if "spawned: 'airflow-scheduler'" in line)
    assert loader_done < scheduler, "\n".join(lines[: scheduler + 1])


def test_the_connection_resolves_to_the_reviews_role(connection: dict, running_stack: RunningStack) -> None:
    stack = running_stack.stack
    assert connection["conn_type"] == "postgres"
    assert (connection["login"], connection["schema"]) == ("reviews", "reviews")
    # make stack's only change: the service name and port become the local PostgreSQL's.
    assert (connection["host"], int(connection["port"])) == ("127.0.0.1", stack.ports["postgres:5432"])
    assert connection["password"] == running_stack.secrets["REVIEWS_DB_PASSWORD"]


def test_the_connection_reads_the_table_spread_over_12_weeks(
    connection: dict, running_stack: RunningStack, file_rows: int
) -> None:
    uri = connection["get_uri"].replace("postgres://", "postgresql://", 1)
    assert _query(uri, "SELECT current_user, tableowner FROM pg_tables WHERE tablename = 'reviews'") == [
        ("reviews", "reviews")
    ]
    [(rows, first, last, weeks)] = _query(
        uri,
        "SELECT count(*), min(ingested_at), max(ingested_at), "
        "count(DISTINCT floor(extract(epoch FROM max_at - ingested_at) / 604800)) "
        "FROM reviews, (SELECT max(ingested_at) AS max_at FROM reviews) newest",
    )
    assert rows == file_rows
    assert weeks == WEEKS
    # Within the last 12 weeks of the load, which happened after the session started.
    assert running_stack.started_at - timedelta(weeks=WEEKS) < first < last <= datetime.now(UTC)
    # What the DAG's ingest runs on that URI.
    assert len(read_table(f"{uri}?table=reviews")) == file_rows


def test_the_reviews_role_cannot_open_the_other_databases(connection: dict) -> None:
    uri = connection["get_uri"].replace("postgres://", "postgresql://", 1)
    for database in ("airflow", "mlflow"):
        with pytest.raises(psycopg2.OperationalError, match="permission denied for database"):
            psycopg2.connect(uri.rsplit("/", 1)[0] + f"/{database}").close()


def test_the_dag_reads_the_reviews_table_by_default(
    rest_run: FinishedRun, running_stack: RunningStack
) -> None:
    api = running_stack.api
    params = api.get(f"/dags/{DAG_ID}/details")["params"]
    assert params["source"]["value"] == "postgres:reviews"
    assert "source" not in rest_run.run["conf"], "the quick run leaves the source at its default"
    path = f"/dags/{DAG_ID}/dagRuns/{rest_run.run_id}/taskInstances/ingest/logs/1"
    content = api.get(path, full_content=True)["content"]
    text = "\n".join(
        str(line.get("event", line)) if isinstance(line, dict) else str(line) for line in content
    )
    port = running_stack.stack.ports["postgres:5432"]
    assert re.search(
        rf"ingested \d+ reviews from postgresql://reviews:\*\*\*@127\.0\.0\.1:{port}/reviews\?table=reviews",
        text,
    ), text[-2000:]
    assert running_stack.secrets["REVIEWS_DB_PASSWORD"] not in text


def test_a_review_file_that_breaks_the_contract_keeps_the_scheduler_from_starting(
    pytestconfig: pytest.Config,
) -> None:
    root = Path(os.environ.get("TMPDIR", "/tmp")) / f"sentiment-badfile-{os.getpid()}"
    root.mkdir(mode=0o755)
    data = root / "data"
    data.mkdir()
    name = Path(read_env_file(ROOT / "deploy" / "airflow.env")["REVIEWS_PATH"]).name
    (data / name).write_bytes(gzip.compress(b"not,the,header\n1,2,3\n"))
    env = {
        **os.environ,
        "STACK_DIR": str(root / "state"),
        "STACK_ENV_FILE": str(root / ".env"),
        "STACK_AIRFLOW_PORT": str(free_port()),
        "STACK_MLFLOW_PORT": str(free_port()),
        "SENTIMENT_DATA_DIR": str(data),
    }
    try:
        assert gen_secrets(root / ".env", env).returncode == 0
        started = time.monotonic()
        up = run_script("up", env, timeout=600)
        failed_s = time.monotonic() - started
        stack = Stack.load(root / "state", root / ".env")
        left = leftovers(stack)
        scheduler_log = (stack.logs / "airflow-scheduler.log").exists()
    finally:
        run_script("down", env, timeout=120)
        shutil.rmtree(root, ignore_errors=True)
    report(
        pytestconfig,
        f"stack: a review file that breaks the contract failed `up` at reviews-loader in {failed_s:.0f} s",
    )
    assert up.returncode == 1, up.stdout + up.stderr
    assert "reviews-loader failed (exit status 2)" in up.stderr, up.stderr
    assert "data contract violated" in up.stderr, up.stderr
    assert "missing columns" in up.stderr, up.stderr
    assert "postgres healthy" in up.stdout
    assert not scheduler_log, "the scheduler started before the loader had succeeded"
    assert not left, f"`up` left processes after failing: {left}"
