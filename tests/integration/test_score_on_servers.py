"""The scoring stage against the session's real PostgreSQL and MLflow server, with a tiny
registered pyfunc (tests/support/toy_model.py): upserts keyed on (review_id, model_version), a
run SIGKILLed between chunks, no champion, the version pinned while the alias moves, and the
prediction watch on a real week and on a week of one-star reviews."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from review_sentiment.batch_score import NoChampion, Window, resolve_champion, score_reviews
from review_sentiment.config import PROJECT_ROOT, Settings
from review_sentiment.reviews_db import load_table
from review_sentiment.synthetic import write_synthetic_csv
from tests.integration.test_stages_on_servers import real_reviews
from tests.support.servers import MlflowServer, PostgresServer
from tests.support.toy_model import real_weeks, register_toy_version, store_toy_reference, toy_probability

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MODEL = "customer-sentiment-analysis-score"
ROWS = 2_400
CHUNK = 1_000
ARRIVED = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
WINDOW = Window(ARRIVED - timedelta(days=1), ARRIVED + timedelta(hours=1), "the test's day")


@pytest.fixture(scope="module")
def db(postgres: PostgresServer) -> str:
    """A database with a reviews table of synthetic reviews that all arrived at ARRIVED."""
    import tempfile

    url = postgres.create_database("score_reviews")
    with tempfile.TemporaryDirectory() as tmp:
        load_table(
            write_synthetic_csv(Path(tmp) / "reviews.csv", ROWS, seed=3), f"{url}?table=reviews", ARRIVED
        )
    return url


@pytest.fixture(scope="module")
def versions(mlflow_server: MlflowServer) -> tuple[str, str]:
    """v1 (champion) and v2 (not yet), apart by their bias."""
    first = register_toy_version(mlflow_server.url, MODEL, bias=0.0, threshold=0.55)
    second = register_toy_version(mlflow_server.url, MODEL, bias=2.0, threshold=0.4, champion=False)
    return first, second


def _settings(mlflow_url: str, model: str = MODEL) -> Settings:
    return Settings.from_env({"MLFLOW_TRACKING_URI": mlflow_url, "SENTIMENT_MODEL_NAME": model})


def _rows(url: str, table: str) -> pd.DataFrame:
    import psycopg2

    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute(
            f"SELECT review_id, model_version, probability, label, threshold, dag_run_id FROM {table}"
        )
        found = cur.fetchall()
    conn.close()
    return pd.DataFrame(
        found, columns=["review_id", "model_version", "probability", "label", "threshold", "run"]
    )


def _texts(url: str) -> pd.Series:
    import psycopg2

    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute("SELECT review_id, review_text FROM reviews WHERE coalesce(trim(review_text), '') <> ''")
        found = dict(cur.fetchall())
    conn.close()
    return pd.Series(found).sort_index()


def _first_chunk(url: str) -> list[int]:
    """The ids the first chunk scores: the first CHUNK reviews by id, those with a text."""
    import psycopg2

    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT review_id, review_text FROM reviews ORDER BY review_id LIMIT {CHUNK}")
        found = [i for i, text in cur.fetchall() if text and text.strip()]
    conn.close()
    return found


def _score(db: str, mlflow_url: str, table: str, run: str, **kwargs):
    champion = resolve_champion(_settings(mlflow_url))
    return score_reviews(
        f"{db}?table=reviews", champion, window=WINDOW, target=f"{db}?table={table}",
        output_path=Path("/nonexistent/unused.parquet"), dag_run_id=run, tracking_uri=mlflow_url,
        chunk_rows=CHUNK, **kwargs,
    )  # fmt: skip


def test_a_rerun_replaces_rather_than_duplicates(db: str, mlflow_server: MlflowServer, versions) -> None:
    first = _score(db, mlflow_server.url, "predictions_rerun", "sentiment_score/run-1")
    again = _score(db, mlflow_server.url, "predictions_rerun", "sentiment_score/run-2")
    rows = _rows(db, "predictions_rerun")
    texts = _texts(db)
    assert first.rows == again.rows == len(texts) == len(rows)
    assert first.chunks == again.chunks == -(-len(texts) // CHUNK)
    assert not rows.duplicated(["review_id", "model_version"]).any()
    assert set(rows["run"]) == {"sentiment_score/run-2"}  # the rerun's values replaced the first's
    # The champion's (v1) answers, at its own threshold.
    rows = rows.set_index("review_id").sort_index()
    assert set(rows["model_version"]) == {int(versions[0])}
    assert set(rows["threshold"]) == {0.55}
    expected = toy_probability(texts, bias=0.0)
    assert np.allclose(rows["probability"].to_numpy(), expected)
    assert (rows["label"].to_numpy() == (expected >= 0.55)).all()


def test_a_window_with_no_arrivals_scores_nothing(db: str, mlflow_server: MlflowServer, versions) -> None:
    champion = resolve_champion(_settings(mlflow_server.url))
    empty = Window(ARRIVED + timedelta(days=1), ARRIVED + timedelta(days=2), "the next day")
    result = score_reviews(
        f"{db}?table=reviews", champion, window=empty, target=f"{db}?table=predictions_empty",
        output_path=Path("/unused"), dag_run_id="r", tracking_uri=mlflow_server.url,
    )  # fmt: skip
    assert result.rows == 0
    assert len(_rows(db, "predictions_empty")) == 0  # the table exists, empty


_KILLED_RUN = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from review_sentiment import batch_score, predictions
    from review_sentiment.config import Settings

    db, mlflow_url, model, table = sys.argv[1:5]
    commit = predictions.PostgresSink._commit
    done = []

    def commit_or_die(self):
        if done:  # the second chunk is inserted but not committed: killed here
            os.kill(os.getpid(), signal.SIGKILL)
        commit(self)
        done.append(1)

    predictions.PostgresSink._commit = commit_or_die
    settings = Settings.from_env({"MLFLOW_TRACKING_URI": mlflow_url, "SENTIMENT_MODEL_NAME": model})
    champion = batch_score.resolve_champion(settings)
    start = batch_score.datetime.fromisoformat(sys.argv[5])
    end = batch_score.datetime.fromisoformat(sys.argv[6])
    batch_score.score_reviews(
        f"{db}?table=reviews", champion, window=batch_score.Window(start, end, "test"),
        target=f"{db}?table={table}", output_path=Path("/unused"), dag_run_id="killed",
        tracking_uri=mlflow_url, chunk_rows=int(sys.argv[7]),
    )
    """
)


def test_a_run_killed_mid_chunk_leaves_whole_chunks_and_a_rerun_completes(
    db: str, mlflow_server: MlflowServer, versions
) -> None:
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT / "include"), "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run(
        [sys.executable, "-c", _KILLED_RUN, db, mlflow_server.url, MODEL, "predictions_killed",
         WINDOW.start.isoformat(), WINDOW.end.isoformat(), str(CHUNK)],
        env=env, capture_output=True, text=True, timeout=300, cwd=PROJECT_ROOT,
    )  # fmt: skip
    assert done.returncode == -signal.SIGKILL, done.stderr[-3000:]
    rows = _rows(db, "predictions_killed")
    # The first chunk committed; the second, inserted when the process died, left nothing.
    assert sorted(rows["review_id"]) == _first_chunk(db)
    assert set(rows["run"]) == {"killed"}

    result = _score(db, mlflow_server.url, "predictions_killed", "sentiment_score/rerun")
    rows = _rows(db, "predictions_killed")
    assert len(rows) == result.rows == len(_texts(db))
    assert not rows.duplicated(["review_id", "model_version"]).any()
    assert set(rows["run"]) == {"sentiment_score/rerun"}


def test_no_champion_is_a_typed_result_not_an_error(mlflow_server: MlflowServer) -> None:
    found = resolve_champion(_settings(mlflow_server.url, "customer-sentiment-analysis-no-champion"))
    assert isinstance(found, NoChampion)
    assert "has no champion yet" in found.reason


def test_the_version_is_pinned_while_the_alias_moves(db: str, mlflow_server: MlflowServer, versions) -> None:
    from mlflow import MlflowClient

    first, second = versions
    client = MlflowClient(mlflow_server.url, mlflow_server.url)
    client.set_registered_model_alias(MODEL, "champion", first)

    def promote_meanwhile(chunk: int, rows: int) -> None:
        if chunk == 1:
            client.set_registered_model_alias(MODEL, "champion", second)

    try:
        result = _score(db, mlflow_server.url, "predictions_pinned", "pinned", on_chunk=promote_meanwhile)
        assert client.get_model_version_by_alias(MODEL, "champion").version == second  # it did move
    finally:
        client.set_registered_model_alias(MODEL, "champion", first)
    rows = _rows(db, "predictions_pinned").set_index("review_id").sort_index()
    assert result.chunks > 1
    assert result.version == first
    assert set(rows["model_version"]) == {int(first)}
    assert set(rows["threshold"]) == {0.55}  # v1's threshold, not v2's 0.4
    assert np.allclose(rows["probability"].to_numpy(), toy_probability(_texts(db), bias=0.0))


def test_the_stacks_reviews_role_can_create_the_predictions_table(postgres: PostgresServer) -> None:
    """The stack's reviews role owns its database (deploy/postgres/init-reviews-database.sh), so on
    PostgreSQL 15+ it may create tables in the public schema: the first run creates the table."""
    import psycopg2

    from review_sentiment.predictions import PostgresSink

    admin = psycopg2.connect(postgres.url())
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute("CREATE ROLE score_owner LOGIN")
        cur.execute("CREATE DATABASE score_owned OWNER score_owner")
        cur.execute("REVOKE ALL ON DATABASE score_owned FROM PUBLIC")
    admin.close()
    url = f"postgresql://score_owner@127.0.0.1:{postgres.port}/score_owned"
    PostgresSink(url, "review_predictions").close()
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute("SELECT tableowner FROM pg_tables WHERE tablename = 'review_predictions'")
        assert cur.fetchone() == ("score_owner",)
    conn.close()


def test_the_prediction_watch_is_quiet_on_a_real_week_and_alerts_on_one_star_reviews(
    db: str, mlflow_server: MlflowServer, versions, tmp_path: Path
) -> None:
    """Scored and read back as the DAG does (the real week from a table into a table; the one-star
    week, which the reviews table's data contract refuses for its 1.9% recommended, from a file
    into a Parquet file): one point each in the champion's prediction series, with the PSI
    against the reference stored with the version."""
    from mlflow import MlflowClient

    from review_sentiment.watch import run_step, watch_predictions

    weeks = real_weeks(real_reviews())
    texts = weeks["test"]["Review Text"]
    store_toy_reference(mlflow_server.url, MODEL, versions[0], texts, bias=0.0, threshold=0.55)
    settings = _settings(mlflow_server.url)
    champion, parquet = resolve_champion(settings), tmp_path / "predictions.parquet"
    for name in weeks:
        weeks[name].to_csv(tmp_path / f"{name}.csv", index=False)
    load_table(tmp_path / "week.csv", f"{db}?table=watch_week", ARRIVED)
    ways = {"week": (f"{db}?table=watch_week", f"{db}?table=predictions_watch"),
            "one_star": (str(tmp_path / "one_star.csv"), "parquet")}  # fmt: skip
    found = {}
    for day, (name, (source, target)) in enumerate(ways.items(), start=1):
        run = f"sentiment_score/watch-{name}"
        score_reviews(source, champion, window=WINDOW, target=target, output_path=parquet, dag_run_id=run,
                      tracking_uri=mlflow_server.url)  # fmt: skip
        due = ARRIVED + timedelta(days=day)
        found[name] = watch_predictions(target, parquet, champion, dag_run_id=run, run_after=due,
                                        settings=settings)  # fmt: skip
    week, one_star = found["week"], found["one_star"]
    assert week.count == len(weeks["week"])
    assert week.psi < 0.05, week
    assert week.alert is None, week
    assert week.note == ""
    assert one_star.count == len(weeks["one_star"]) > 700
    assert one_star.psi > 0.2, one_star
    assert "the PSI of the probabilities against the test split is" in one_star.alert
    assert one_star.share_not_recommended > week.share_not_recommended + 0.1
    assert one_star.mean_probability < week.mean_probability
    # Both points on the version's one series run, at their runs' steps.
    assert one_star.run_id == week.run_id
    client = MlflowClient(mlflow_server.url, mlflow_server.url)
    series = client.get_run(week.run_id)
    assert series.info.run_name == f"predictions champion v{versions[0]}"
    assert series.data.tags["sentiment.role"] == "predictions"
    history = sorted(client.get_metric_history(week.run_id, "predictions_psi"), key=lambda m: m.step)
    steps = [run_step(ARRIVED + timedelta(days=d)) for d in (1, 2)]
    assert [(m.step, m.value) for m in history] == [(steps[0], week.psi), (steps[1], one_star.psi)]
    counts = client.get_metric_history(week.run_id, "predictions_count")
    assert sorted(m.value for m in counts) == sorted([week.count, one_star.count])
