"""``airflow dags test sentiment_score`` on the embedded default target (a Parquet file under the
artifact root), with Airflow's metadata on the session's PostgreSQL and the session's MLflow
server: first with no champion (skipped, with the reason), then with a tiny toy champion (whose
prediction series gets a point without PSI: no reference was stored with it), then, once a
reference is stored, on a week of real one-star reviews (a mailed prediction alert, a green run)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from review_sentiment.synthetic import write_synthetic_csv
from tests.integration.test_stages_on_servers import real_reviews
from tests.support.airflow_cli import airflow, project_airflow_env
from tests.support.mail import MailServer, connection
from tests.support.servers import MlflowServer, PostgresServer
from tests.support.toy_model import real_weeks, register_toy_version, store_toy_reference, toy_probability

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
    mail: MailServer,
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
            "SENTIMENT_NOTIFY_TO": "ml-team@example.org",
            "AIRFLOW_CONN_SMTP_DEFAULT": connection(mail.port),
        },
    )


def _run(env: dict[str, str], postgres: PostgresServer, *conf: str) -> dict[str, object]:
    import psycopg2

    done = airflow(env, "dags", "test", DAG_ID, *conf, timeout=600)
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-5000:]
    with psycopg2.connect(postgres.url("airflow_score")) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT run_id, state, run_after FROM dag_run WHERE dag_id = %s ORDER BY id DESC LIMIT 1",
            (DAG_ID,),
        )
        run_id, state, run_after = cur.fetchone()
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
    return {
        "run_id": run_id,
        "state": state,
        "tasks": tasks,
        "log": log,
        "events": events,
        "run_after": run_after,
    }


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
    assert without_champion["tasks"] == {
        "resolve_champion": "skipped", "score": "skipped", "watch_predictions": "skipped"
    }  # fmt: skip
    assert f"{MODEL} has no champion yet: nothing to score" in without_champion["log"]
    assert without_champion["events"] == []  # nothing written, nothing announced


def test_the_champion_scores_every_review_into_the_parquet_file(
    with_champion, airflow_env: dict[str, str], reviews: Path
) -> None:
    assert with_champion["state"] == "success"
    assert with_champion["tasks"] == {
        "resolve_champion": "success", "score": "success", "watch_predictions": "success"
    }  # fmt: skip
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


def _series_point(mlflow_url: str, version: str, run_after) -> dict[str, float]:
    """The point the run due at ``run_after`` logged in ``version``'s prediction series."""
    from mlflow import MlflowClient

    from review_sentiment.watch import run_step

    client = MlflowClient(mlflow_url, mlflow_url)
    experiment = client.get_experiment_by_name("sentiment-retrain")
    query = f"tags.`monitor.model` = '{MODEL}' and tags.`monitor.version` = '{version}'"
    (series,) = client.search_runs(
        [experiment.experiment_id], f"{query} and tags.`sentiment.role` = 'predictions'"
    )
    step = run_step(run_after)
    return {
        key: m.value
        for key in ("count", "mean_probability", "share_not_recommended", "psi")
        for m in client.get_metric_history(series.info.run_id, f"predictions_{key}")
        if m.step == step
    }


def test_a_champion_without_a_reference_gets_a_point_without_psi_and_no_mail(
    with_champion, mlflow_server: MlflowServer, mail: MailServer, reviews: Path
) -> None:
    point = _series_point(mlflow_server.url, with_champion["version"], with_champion["run_after"])
    texts = pd.read_csv(reviews, dtype=str, keep_default_na=False)["Review Text"]
    assert point["count"] == (texts.str.strip() != "").sum()  # every review with a text
    assert 0 < point["mean_probability"] < 1
    assert "psi" not in point
    assert (
        "no reference distribution is stored with its run (monitoring/reference.json" in with_champion["log"]
    )
    assert mail.inbox.messages == []  # no alert without a reference


@pytest.fixture(scope="module")
def one_star_week(
    with_champion,
    airflow_env: dict[str, str],
    postgres: PostgresServer,
    mlflow_server: MlflowServer,
    reviews: Path,
    mail: MailServer,
) -> dict[str, object]:
    """The toy champion, now with a reference (its answers on 2,000 real reviews), scores a file of
    every real one-star review."""
    weeks = real_weeks(real_reviews())
    version = with_champion["version"]
    store_toy_reference(
        mlflow_server.url, MODEL, version, weeks["test"]["Review Text"], bias=0.5, threshold=0.6
    )
    path = reviews.parent / "one_star.csv"
    weeks["one_star"].to_csv(path, index=False)
    mails_before = len(mail.inbox.messages)
    done = _run(airflow_env, postgres, "-c", json.dumps({"source": str(path)}))
    return {
        **done,
        "version": version,
        "mails": mail.inbox.messages[mails_before:],
        "rows": len(weeks["one_star"]),
    }


def test_a_week_of_one_star_reviews_mails_a_prediction_alert_and_the_run_stays_green(
    one_star_week, mlflow_server: MlflowServer
) -> None:
    assert one_star_week["state"] == "success"
    assert set(one_star_week["tasks"].values()) == {"success"}
    assert len(one_star_week["tasks"]) == 3
    point = _series_point(mlflow_server.url, one_star_week["version"], one_star_week["run_after"])
    assert point["count"] == one_star_week["rows"]
    assert point["psi"] > 0.2, point
    (recipients, message), *more = one_star_week["mails"]
    assert more == []
    assert recipients == ["ml-team@example.org"]
    version = one_star_week["version"]
    run_id = one_star_week["run_id"]
    assert (
        message["Subject"]
        == f"[{DAG_ID}] prediction alert: champion v{version}'s predictions moved (run {run_id})"
    )
    body = message.get_body(("html",)).get_content()
    assert f"the PSI of the probabilities against the test split is {point['psi']:.3f}" in body
    assert f"{int(point['count']):,} reviews, mean probability" in body
