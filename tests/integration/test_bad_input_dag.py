"""Bad input end to end: ``airflow dags test sentiment_retrain`` on a real PostgreSQL metadata DB
and a real MLflow server, with a header-only file and then a path out of the data roots as the
``source`` param, and with misspelt conf keys. Each run fails at ``ingest`` on its first try (no
retries burnt), with one clear line; nothing downstream runs, no model version is created and the
champion stays where it was.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.data.test_malformed_input import csv_text
from tests.support.airflow_cli import airflow, project_airflow_env
from tests.support.mail import MailServer, connection
from tests.support.servers import MlflowServer, PostgresServer

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DAG_ID = "sentiment_retrain"
MODEL = "customer-sentiment-analysis-bad-input"
DOWNSTREAM = {"preprocess", "tokenize", "train", "register"}
CASES = {
    "header-only": (
        {"source": "{data}/header_only.csv"},
        "AirflowFailException: DataContractError: data contract violated by {data}/header_only.csv (1): "
        "only 0 rows with review text, need at least 200",
    ),
    "path-out-of-the-data-roots": (
        {"source": "{data}/../../../../etc/passwd"},
        "AirflowFailException: UnsafePathError: source path '{data}/../../../../etc/passwd' is outside "
        "the allowed data roots (SENTIMENT_DATA_ROOTS): {data}",
    ),
    # Misspelt keys: without the check, a full-data 50-epoch run would start.
    "unknown-conf-keys": (
        {"epochs": 2, "sample": 0.2},
        "AirflowFailException: ConfigError: unknown conf keys ['epochs', 'sample']; "
        "valid keys: ['approval_timeout_hours', 'beat_baseline', 'force_promote', 'grid', ",
    ),
}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("bad-input-data").resolve()
    (folder / "header_only.csv").write_text(csv_text([]), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def champion(mlflow_server: MlflowServer) -> str:
    """A registered version with the champion alias, standing for last week's model."""
    from mlflow import MlflowClient

    client = MlflowClient(mlflow_server.url, mlflow_server.url)
    experiment = client.create_experiment("bad-input-champion")
    run = client.create_run(experiment)
    client.set_terminated(run.info.run_id)
    client.create_registered_model(MODEL)
    version = client.create_model_version(MODEL, f"{run.info.artifact_uri}/model", run_id=run.info.run_id)
    client.set_registered_model_alias(MODEL, "champion", version.version)
    return version.version


@pytest.fixture(scope="module")
def airflow_env(
    tmp_path_factory: pytest.TempPathFactory,
    postgres: PostgresServer,
    mlflow_server: MlflowServer,
    data_dir: Path,
    mail: MailServer,
) -> dict[str, str]:
    postgres.create_database("airflow_bad_input")
    return project_airflow_env(
        tmp_path_factory.mktemp("airflow-home-bad-input"),
        postgres.url("airflow_bad_input", "postgresql+psycopg2"),
        mlflow_server.url,
        {
            "SENTIMENT_MODEL_NAME": MODEL,
            # The default data root is this file's folder (SENTIMENT_DATA_ROOTS dropped).
            "REVIEWS_PATH": str(data_dir / "womens_clothing_reviews.csv.gz"),
            "SENTIMENT_NOTIFY_TO": "ml-team@example.org",
            "AIRFLOW_CONN_SMTP_DEFAULT": connection(mail.port),
        },
        drop=("SENTIMENT_DATA_ROOTS",),
    )


@pytest.fixture(scope="module")
def failed_runs(
    airflow_env: dict[str, str], postgres: PostgresServer, data_dir: Path, champion: str
) -> dict[str, dict]:
    import psycopg2

    results = {}
    for case, (template, _) in CASES.items():
        conf = {
            key: value.format(data=data_dir) if isinstance(value, str) else value
            for key, value in template.items()
        }
        started = time.monotonic()
        done = airflow(airflow_env, "dags", "test", DAG_ID, "-c", json.dumps(conf))
        seconds = time.monotonic() - started
        with psycopg2.connect(postgres.url("airflow_bad_input")) as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT run_id, state FROM dag_run WHERE dag_id = %s AND conf::text LIKE %s",
                (DAG_ID, f"%{json.dumps(conf)[1:-1]}%"),
            )
            (run_id, state), *more = cur.fetchall()
            assert not more
            cur.execute(
                "SELECT task_id, map_index, state, try_number, EXTRACT(EPOCH FROM end_date - start_date) "
                "FROM task_instance WHERE dag_id = %s AND run_id = %s",
                (DAG_ID, run_id),
            )
            tasks = {row[0]: row[1:] for row in cur.fetchall()}
            cur.execute(
                "SELECT n.content FROM dag_run_note n JOIN dag_run r ON r.id = n.dag_run_id "
                "WHERE r.dag_id = %s AND r.run_id = %s",
                (DAG_ID, run_id),
            )
            note = cur.fetchone()
        results[case] = {
            "note": note and note[0],
            "run_id": run_id,
            "state": state,
            "tasks": tasks,
            "log": done.stdout + done.stderr,
            "seconds": seconds,
        }
    return results


@pytest.mark.parametrize("case", list(CASES))
def test_run_fails_at_ingest_on_the_first_try(failed_runs, case: str) -> None:
    run = failed_runs[case]
    assert run["state"] == "failed"
    _, state, try_number, _ = run["tasks"]["ingest"]
    assert (state, try_number) == ("failed", 1), run["tasks"]
    for task in DOWNSTREAM:
        assert run["tasks"][task][1] == "upstream_failed", (task, run["tasks"])
    assert "up_for_retry" not in {t[1] for t in run["tasks"].values()}


@pytest.mark.parametrize("case", list(CASES))
def test_the_reason_is_one_clear_line(failed_runs, data_dir: Path, case: str) -> None:
    expected = CASES[case][1].format(data=data_dir)
    lines = [line for line in failed_runs[case]["log"].splitlines() if expected in line]
    assert lines, failed_runs[case]["log"][-4000:]


@pytest.mark.parametrize("case", list(CASES))
def test_nothing_registered_and_the_champion_unchanged(
    failed_runs, mlflow_server: MlflowServer, champion: str, case: str
) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(mlflow_server.url, mlflow_server.url)
    assert [v.version for v in client.search_model_versions(f"name = '{MODEL}'")] == [champion]
    assert client.get_model_version_by_alias(MODEL, "champion").version == champion
    tagged = client.search_model_versions(
        f"name = '{MODEL}' and tags.`pipeline_run_id` = '{DAG_ID}/{failed_runs[case]['run_id']}'"
    )
    assert tagged == []


def test_each_failed_run_says_where_in_its_note(failed_runs) -> None:
    # monitor_champion checks the conf and the source too; a header-only file has no week to score.
    assert {case: run["note"] for case, run in failed_runs.items()} == {
        "header-only": "**failed** at ingest: see its log",
        "path-out-of-the-data-roots": "**failed** at ingest, monitor_champion: see its log",
        "unknown-conf-keys": "**failed** at ingest, monitor_champion: see its log",
    }


def test_each_failed_run_mailed_once(failed_runs, mail: MailServer) -> None:
    mails = [message for _, message in mail.inbox.messages]
    assert len(mails) == len(CASES), [m["Subject"] for m in mails]
    for case, run in failed_runs.items():
        mine = [m for m in mails if run["run_id"] in m["Subject"]]
        assert len(mine) == 1, (case, [m["Subject"] for m in mails])
        assert mine[0]["Subject"].startswith("[sentiment_retrain] FAILED"), mine[0]["Subject"]
        assert "/dags/sentiment_retrain/runs/" in mine[0].get_body(("html",)).get_content()


def test_nothing_was_written_past_ingest(failed_runs, airflow_env: dict[str, str]) -> None:
    root = Path(airflow_env["SENTIMENT_ARTIFACT_ROOT"]) / DAG_ID
    for run in failed_runs.values():
        run_dir = root / run["run_id"]
        written = sorted(str(p.relative_to(run_dir)) for p in run_dir.rglob("*")) if run_dir.exists() else []
        assert [p for p in written if not p.startswith("ingest")] == [], written
        assert [p for p in written if p.startswith("ingest/")] == [], written


@pytest.mark.parametrize("case", list(CASES))
def test_failure_is_fast(failed_runs, case: str) -> None:
    run = failed_runs[case]
    ingest_seconds = float(run["tasks"]["ingest"][3])
    # Printed for docs/RELIABILITY.md (pytest -s shows it).
    print(f"\n{case}: ingest failed after {ingest_seconds:.2f} s; dags test took {run['seconds']:.0f} s")
    assert ingest_seconds < 30
