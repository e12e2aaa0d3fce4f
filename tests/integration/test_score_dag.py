"""``airflow dags test sentiment_score`` on the embedded default target (a Parquet file under the
artifact root), with Airflow's metadata on the session's PostgreSQL and the session's MLflow
server: first with no champion (skipped, with the reason), then with a tiny toy champion."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from review_sentiment.synthetic import write_synthetic_csv
from tests.support.airflow_cli import airflow, project_airflow_env
from tests.support.servers import MlflowServer, PostgresServer
from tests.support.toy_model import register_toy_version, toy_probability

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DAG_ID = "sentiment_score"
MODEL = "customer-sentiment-analysis-score-dag"
ROWS = 1_500


@pytest.fixture(scope="module")
def reviews(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_csv(tmp_path_factory.mktemp("score-data") / "reviews.csv", ROWS, seed=5)


@pytest.fixture(scope="module")
def airflow_env(
    tmp_path_factory: pytest.TempPathFactory,
    postgres: PostgresServer,
    mlflow_server: MlflowServer,
    reviews: Path,
) -> dict[str, str]:
    postgres.create_database("airflow_score")
    return project_airflow_env(
        tmp_path_factory.mktemp("airflow-home-score"),
        postgres.url("airflow_score", "postgresql+psycopg2"),
        mlflow_server.url,
        {
            "SENTIMENT_MODEL_NAME": MODEL,
            "REVIEWS_PATH": str(reviews),
            "SENTIMENT_DATA_ROOTS": str(reviews.parent),
        },
    )


def _run(env: dict[str, str], postgres: PostgresServer) -> dict[str, object]:
    import psycopg2

    done = airflow(env, "dags", "test", DAG_ID, timeout=600)
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-5000:]
    with psycopg2.connect(postgres.url("airflow_score")) as conn, conn.cursor() as cur:
        cur.execute("SELECT run_id, state FROM dag_run WHERE dag_id = %s ORDER BY id DESC LIMIT 1", (DAG_ID,))
        run_id, state = cur.fetchone()
        cur.execute(
            "SELECT task_id, state FROM task_instance WHERE dag_id = %s AND run_id = %s", (DAG_ID, run_id)
        )
        tasks = dict(cur.fetchall())
        cur.execute(
            "SELECT a.name FROM asset_event e JOIN asset a ON a.id = e.asset_id "
            "WHERE e.source_dag_id = %s AND e.source_run_id = %s",
            (DAG_ID, run_id),
        )
        events = [name for (name,) in cur.fetchall()]
    conn.close()
    return {"run_id": run_id, "state": state, "tasks": tasks, "log": log, "events": events}


@pytest.fixture(scope="module")
def without_champion(airflow_env: dict[str, str], postgres: PostgresServer) -> dict[str, object]:
    return _run(airflow_env, postgres)


@pytest.fixture(scope="module")
def with_champion(
    without_champion, airflow_env: dict[str, str], postgres: PostgresServer, mlflow_server: MlflowServer
) -> dict[str, object]:
    version = register_toy_version(mlflow_server.url, MODEL, bias=0.5, threshold=0.6)
    return {**_run(airflow_env, postgres), "version": version}


def test_no_champion_skips_the_run_with_the_reason(without_champion) -> None:
    assert without_champion["state"] == "success"
    assert without_champion["tasks"] == {"resolve_champion": "skipped", "score": "skipped"}
    assert f"{MODEL} has no champion yet: nothing to score" in without_champion["log"]
    assert without_champion["events"] == []  # nothing written, nothing announced


def test_the_champion_scores_every_review_into_the_parquet_file(
    with_champion, airflow_env: dict[str, str], reviews: Path
) -> None:
    assert with_champion["state"] == "success"
    assert with_champion["tasks"] == {"resolve_champion": "success", "score": "success"}
    path = (
        Path(airflow_env["SENTIMENT_ARTIFACT_ROOT"])
        / DAG_ID
        / with_champion["run_id"]
        / "score"
        / "predictions.parquet"
    )
    written = pd.read_parquet(path).set_index("review_id").sort_index()
    source = pd.read_csv(reviews, dtype=str, keep_default_na=False)
    source = source.loc[source["Review Text"].str.strip() != ""]
    source.index = source.iloc[:, 0].astype(int)
    source = source.sort_index()
    assert written.index.tolist() == source.index.tolist()
    assert set(written["model_version"]) == {int(with_champion["version"])}
    assert set(written["model_name"]) == {MODEL}
    assert set(written["threshold"]) == {0.6}
    assert set(written["dag_run_id"]) == {f"{DAG_ID}/{with_champion['run_id']}"}
    expected = toy_probability(source["Review Text"], bias=0.5)
    assert (written["probability"].to_numpy() - expected).__abs__().max() < 1e-9
    assert (written["label"].to_numpy() == (expected >= 0.6)).all()


def test_the_score_task_updated_the_predictions_asset(with_champion) -> None:
    assert with_champion["events"] == ["sentiment_predictions"]
