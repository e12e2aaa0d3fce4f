"""``airflow dags test sentiment_retrain`` with Airflow's metadata on a real PostgreSQL and a
real MLflow server (PostgreSQL backend), on a sample of the real data with a two-point grid."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from review_sentiment import task_ids as ids
from review_sentiment.config import PROJECT_ROOT
from review_sentiment.names import XCOM_EXPERIMENT_ID, XCOM_RUN_ID
from tests.integration.test_stages_on_servers import real_reviews
from tests.support.airflow_cli import airflow, project_airflow_env
from tests.support.mail import MailServer, connection
from tests.support.quick_run import QUICK_CONF
from tests.support.servers import MlflowServer, PostgresServer

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DAG_ID = "sentiment_retrain"
RUN_ID = re.compile("[0-9a-f]{32}")  # an MLflow run id
MODEL = "customer-sentiment-analysis-dag"
CONF = {**QUICK_CONF, "sample_fraction": 0.3, "max_epochs": 8}  # the quick run, on more data


@pytest.fixture(scope="module")
def airflow_env(
    tmp_path_factory: pytest.TempPathFactory,
    postgres: PostgresServer,
    mlflow_server: MlflowServer,
    mail: MailServer,
) -> dict[str, str]:
    postgres.create_database("airflow")
    return project_airflow_env(
        tmp_path_factory.mktemp("airflow-home"),
        postgres.url("airflow", "postgresql+psycopg2"),
        mlflow_server.url,
        {
            "MLFLOW_UI_URL": "http://mlflow.example:5000",
            "SENTIMENT_MODEL_NAME": MODEL,
            "REVIEWS_PATH": str(real_reviews()),
            "SENTIMENT_NOTIFY_TO": "ml-team@example.org",
            "SENTIMENT_AIRFLOW_UI_URL": "http://airflow.example:8080",
            "AIRFLOW_CONN_SMTP_DEFAULT": connection(mail.port),
        },
    )


@pytest.fixture(scope="module")
def dag_run(airflow_env: dict[str, str], postgres: PostgresServer) -> dict[str, object]:
    done = airflow(airflow_env, "dags", "test", DAG_ID, "-c", json.dumps(CONF))
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-5000:]
    import psycopg2

    with psycopg2.connect(postgres.url("airflow")) as conn, conn.cursor() as cur:
        cur.execute("SELECT run_id, state FROM dag_run WHERE dag_id = %s", (DAG_ID,))
        runs = cur.fetchall()
        assert len(runs) == 1
        run_id, state = runs[0]
        cur.execute(
            "SELECT task_id, map_index, state FROM task_instance WHERE dag_id = %s AND run_id = %s",
            (DAG_ID, run_id),
        )
        tasks = cur.fetchall()
        cur.execute(
            "SELECT n.content FROM dag_run_note n JOIN dag_run r ON r.id = n.dag_run_id "
            "WHERE r.dag_id = %s AND r.run_id = %s",
            (DAG_ID, run_id),
        )
        note = cur.fetchone()
    return {"run_id": run_id, "state": state, "tasks": tasks, "log": log, "note": note and note[0]}


def _versions(url: str, run_id: str) -> list:
    from mlflow import MlflowClient

    client = MlflowClient(url, url)
    return client.search_model_versions(f"name = '{MODEL}' and tags.`pipeline_run_id` = '{DAG_ID}/{run_id}'")


def test_every_task_succeeded(dag_run) -> None:
    assert dag_run["state"] == "success"
    states = {(task, index): state for task, index, state in dag_run["tasks"]}
    # The first week has no champion to lose to: the branch promotes, without approval.
    kept_ways = ("gate_refused", "smoke_failed", "drifted", "approval", "keep_champion")
    skipped = {task: states.pop((task, -1)) for task in kept_ways}
    assert set(skipped.values()) == {"skipped"}, skipped
    assert set(states.values()) == {"success"}, states
    assert {task for task, _ in states} == {
        "ingest", "preprocess", "tokenize", "prepare_grid", "train", "baseline", "register", "smoke_check",
        "decide", "promote", "gate_passed", "monitor_champion",
    }  # fmt: skip
    assert sorted(index for task, index in states if task == "train") == [0, 1]


def test_one_version_and_the_champion_alias(dag_run, mlflow_server: MlflowServer) -> None:
    from mlflow import MlflowClient

    versions = _versions(mlflow_server.url, dag_run["run_id"])
    assert len(versions) == 1
    client = MlflowClient(mlflow_server.url, mlflow_server.url)
    assert client.get_model_version_by_alias(MODEL, "champion").version == versions[0].version
    tags = versions[0].tags
    # The baseline of the same run was scored on the same test split and recorded.
    assert float(tags["baseline.test_roc_auc"]) > 0.9
    assert tags["gate.beat_baseline"] == "false"
    assert 0.0 < float(tags["candidate.threshold"]) < 1.0
    assert versions[0].description.startswith(f"# {MODEL} version {versions[0].version}")
    # The smoke check loaded it in a fresh process before the alias moved, and said so.
    assert tags["smoke.passed"] == "true", tags.get("smoke.reason")
    assert 0 < float(tags["smoke.seconds_per_1000"]) < 5


def test_the_run_note_says_the_outcome(dag_run, mlflow_server: MlflowServer) -> None:
    version = _versions(mlflow_server.url, dag_run["run_id"])[0].version
    assert dag_run["note"].startswith(f"**promoted v{version}** to champion - candidate ROC AUC 0.")
    assert "no champion score to beat" in dag_run["note"]


def test_the_promotion_was_mailed(dag_run, mail: MailServer, mlflow_server: MlflowServer) -> None:
    version = _versions(mlflow_server.url, dag_run["run_id"])[0].version
    (recipients, message), *more = mail.inbox.messages
    assert not more, [m["Subject"] for _, m in more]
    assert recipients == ["ml-team@example.org"]
    assert message["Subject"].startswith(f"[sentiment_retrain] promoted v{version} to champion")
    body = message.get_body(("html",)).get_content()
    assert f"http://mlflow.example:5000/#/models/{MODEL}/versions/{version}" in body
    assert "http://airflow.example:8080/dags/sentiment_retrain/runs/" in body


def test_train_runs_are_tagged_with_their_task_instance(dag_run, mlflow_server: MlflowServer) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(mlflow_server.url, mlflow_server.url)
    experiment = client.get_experiment_by_name("sentiment-retrain")
    runs = client.search_runs([experiment.experiment_id], f"tags.`airflow.run_id` = '{dag_run['run_id']}'")
    trained = [r for r in runs if r.data.tags["airflow.task_id"] == "train"]
    assert sorted(r.data.tags["airflow.map_index"] for r in trained) == ["0", "1"]
    # The baseline is its own run of the same DAG run, beside the grid.
    assert sorted(r.data.tags["airflow.task_id"] for r in runs) == ["baseline", "train", "train"]
    assert {r.info.status for r in runs} == {"FINISHED"}


def test_extra_links_point_to_mlflow(
    dag_run, airflow_env: dict[str, str], mlflow_server: MlflowServer
) -> None:
    from mlflow import MlflowClient

    code = (
        "import json, sys\n"
        "from airflow.models.taskinstancekey import TaskInstanceKey\n"
        "sys.path.insert(0, 'plugins')\n"
        "from sentiment_mlflow_links import MLflowRunLink, MLflowModelVersionLink\n"
        "run_id = sys.argv[1]\n"
        "train = TaskInstanceKey('sentiment_retrain', 'train', run_id, 1, 0)\n"
        "register = TaskInstanceKey('sentiment_retrain', 'register', run_id, 1, -1)\n"
        "ingest = TaskInstanceKey('sentiment_retrain', 'ingest', run_id, 1, -1)\n"
        "links = [MLflowRunLink().get_link(None, ti_key=train),\n"
        "         MLflowModelVersionLink().get_link(None, ti_key=register),\n"
        "         MLflowRunLink().get_link(None, ti_key=ingest)]\n"
        "print(json.dumps(links))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, dag_run["run_id"]],
        env=airflow_env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=PROJECT_ROOT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    train_link, version_link, ingest_link = json.loads(done.stdout.strip().splitlines()[-1])
    client = MlflowClient(mlflow_server.url, mlflow_server.url)
    run_id = train_link.rsplit("/", 1)[-1]
    run = client.get_run(run_id)
    assert train_link.startswith("http://mlflow.example:5000/#/experiments/")
    assert run.data.tags["airflow.map_index"] == "0"
    version = _versions(mlflow_server.url, dag_run["run_id"])[0].version
    assert version_link == f"http://mlflow.example:5000/#/models/{MODEL}/versions/{version}"
    assert ingest_link == ""


def _xcoms(postgres: PostgresServer, run_id: str) -> dict[tuple[str, int, str], tuple[object, int]]:
    """Every XCom of the run: (task, map index, key) -> (value, size of its stored JSON)."""
    import psycopg2

    with psycopg2.connect(postgres.url("airflow")) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT task_id, map_index, key, value::text FROM xcom WHERE dag_id = %s AND run_id = %s",
            (DAG_ID, run_id),
        )
        rows = cur.fetchall()
    return {(task, index, key): (_decoded(text), len(text)) for task, index, key, text in rows}


def _decoded(text: str) -> object:
    """An XCom's JSON value (a serializer may have stored it as a JSON string of JSON)."""
    value = json.loads(text)
    while isinstance(value, str) and value[:1] in ('"', "{", "["):
        value = json.loads(value)
    return value


def _artifact(value: object, root: Path, name: str | None = None) -> Path:
    """An XCom path: absolute, inside the artifact root, an existing file (named ``name``)."""
    assert isinstance(value, str), value
    path = Path(value)
    assert path.is_absolute(), value
    assert path.resolve().is_relative_to(root.resolve()), value
    assert path.is_file(), value
    assert name is None or path.name == name, value
    return path


def _mlflow_run(value: object) -> dict:
    """A ``{run_id, experiment_id}`` record: an MLflow run id (32 hex) and an experiment id."""
    assert isinstance(value, dict), value
    assert set(value) == {XCOM_RUN_ID, XCOM_EXPERIMENT_ID}, value
    assert RUN_ID.fullmatch(value[XCOM_RUN_ID]), value
    assert str(value[XCOM_EXPERIMENT_ID]).isdigit(), value
    return value


def _week_record(value: object) -> dict:
    """A register/promote record: small, the version and the candidate's MLflow run."""
    assert isinstance(value, dict), value
    assert {"model_name", "version", "run_id", "passed", "reason"} <= set(value), value
    assert value["model_name"] == MODEL
    assert str(value["version"]).isdigit(), value
    assert RUN_ID.fullmatch(value["run_id"]), value
    return value


def test_xcom_holds_references_and_small_records(
    dag_run, postgres: PostgresServer, airflow_env: dict[str, str]
) -> None:
    """XCom carries references, never payloads: paths inside the artifact root to files that
    exist, MLflow run ids, small records with their expected keys; nothing else, nothing big."""
    xcoms = _xcoms(postgres, dag_run["run_id"])
    assert xcoms, "no XCom recorded"
    assert max(size for _, size in xcoms.values()) < 4096, {k: n for k, (_, n) in xcoms.items()}
    value = {key: v for key, (v, _) in xcoms.items()}
    root = Path(airflow_env["SENTIMENT_ARTIFACT_ROOT"])
    _artifact(value[(ids.INGEST, -1, "snapshot")], root, "reviews.parquet")
    _artifact(value[(ids.INGEST, -1, "label_stats")], root)
    _artifact(value[(ids.PREPROCESS, -1, "return_value")], root)
    _artifact(value[(ids.TOKENIZE, -1, "return_value")], root, "manifest.json")
    grid = value[(ids.PREPARE_GRID, -1, "return_value")]
    assert [p["point"]["name"] for p in grid] == [p["name"] for p in CONF["grid"]]
    assert all(set(p) == {"point", XCOM_EXPERIMENT_ID} for p in grid), grid
    trained = [_mlflow_run(value[(ids.TRAIN, i, "return_value")]) for i in range(len(CONF["grid"]))]
    linear = _mlflow_run(value[(ids.BASELINE, -1, "return_value")])
    registered = _week_record(value[(ids.REGISTER, -1, "return_value")])
    assert registered["run_id"] in {t[XCOM_RUN_ID] for t in trained}
    assert linear[XCOM_RUN_ID] not in {t[XCOM_RUN_ID] for t in trained}
    promoted = _week_record(value[(ids.PROMOTE, -1, "return_value")])
    smoked = value[(ids.SMOKE_CHECK, -1, "return_value")]
    assert (smoked["version"], smoked["status"], smoked["failures"]) == (registered["version"], "passed", [])
    assert (promoted["version"], promoted["outcome"]) == (registered["version"], "promoted")
    monitored = value[(ids.MONITOR_CHAMPION, -1, "return_value")]
    assert {"week", "version", "alert"} <= set(monitored), monitored
    # Nothing else: the gates and the branch carry no payload of ours.
    known = {(t, i) for t, i, _ in value}
    assert {t for t, _ in known} <= {
        ids.INGEST, ids.PREPROCESS, ids.TOKENIZE, ids.PREPARE_GRID, ids.TRAIN, ids.BASELINE,
        ids.REGISTER, ids.SMOKE_CHECK, ids.PROMOTE, ids.MONITOR_CHAMPION, ids.DECIDE,
    }, sorted(value)  # fmt: skip


def test_the_cli_with_no_flags_builds_the_dags_manifest(
    dag_run, airflow_env: dict[str, str], tmp_path: Path
) -> None:
    """The shell path with the package defaults (no preprocessing flags) on the same sample builds
    the tokenize manifest this DAG run built with its param defaults."""
    root = Path(airflow_env["SENTIMENT_ARTIFACT_ROOT"])
    (from_dag,) = root.glob(f"{DAG_ID}/{dag_run['run_id']}/{ids.TOKENIZE}/manifest.json")
    env = {**airflow_env, "SENTIMENT_ARTIFACT_ROOT": str(tmp_path / "artifacts")}
    product = None
    for argv in (
        ["ingest", "--source", str(real_reviews()), "--sample-fraction", str(CONF["sample_fraction"])],
        ["preprocess", "--input"],
        ["tokenize", "--input"],
    ):
        argv = [*argv, str(product)] if product else argv
        done = subprocess.run(
            [sys.executable, "-m", "review_sentiment", *argv, "--output", str(tmp_path / argv[0])],
            env=env, capture_output=True, text=True, timeout=600, cwd=PROJECT_ROOT,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        product = Path(done.stdout.strip().splitlines()[-1])
    manifest = json.loads(product.read_text())
    assert json.loads(from_dag.read_text()) == manifest
    for name in (manifest["preprocess_settings"], manifest["vocabulary"]):
        assert json.loads((from_dag.parent / name).read_text()) == json.loads(
            (product.parent / name).read_text()
        )


def test_clearing_register_creates_no_second_version(
    dag_run, airflow_env: dict[str, str], mlflow_server: MlflowServer
) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(mlflow_server.url, mlflow_server.url)
    before = [v.version for v in client.search_model_versions(f"name = '{MODEL}'")]
    champion_before = client.get_model_version_by_alias(MODEL, "champion").version
    cleared = airflow(airflow_env, "tasks", "clear", DAG_ID, "-t", "^register$", "-y")
    assert cleared.returncode == 0, cleared.stderr[-3000:]
    again = airflow(airflow_env, "tasks", "test", DAG_ID, "register", dag_run["run_id"])
    assert again.returncode == 0, (again.stdout + again.stderr)[-5000:]
    assert "already registered for this run" in again.stdout + again.stderr
    after = [v.version for v in client.search_model_versions(f"name = '{MODEL}'")]
    assert sorted(after) == sorted(before)
    assert client.get_model_version_by_alias(MODEL, "champion").version == champion_before


def test_clearing_promote_alone_moves_nothing_twice(
    dag_run, airflow_env: dict[str, str], mlflow_server: MlflowServer
) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(mlflow_server.url, mlflow_server.url)
    before = [v.version for v in client.search_model_versions(f"name = '{MODEL}'")]
    champion_before = client.get_model_version_by_alias(MODEL, "champion").version
    again = airflow(airflow_env, "tasks", "test", DAG_ID, "promote", dag_run["run_id"])
    assert again.returncode == 0, (again.stdout + again.stderr)[-5000:]
    assert "already promoted by this run" in again.stdout + again.stderr
    assert sorted(v.version for v in client.search_model_versions(f"name = '{MODEL}'")) == sorted(before)
    assert client.get_model_version_by_alias(MODEL, "champion").version == champion_before


def test_promote_announced_the_new_champion_as_an_asset_event(
    dag_run, postgres: PostgresServer, mlflow_server: MlflowServer
) -> None:
    """The champion moved: one event on the sentiment_champion Asset (what triggers sentiment_score),
    added through promote's alias outlet, with the new version in its extra; the cleared promote
    (test above: it found its version promoted, and this run's event) emitted no second one."""
    import psycopg2

    version = _versions(mlflow_server.url, dag_run["run_id"])[0].version
    with psycopg2.connect(postgres.url("airflow")) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT a.name, a.uri, e.source_task_id, e.extra FROM asset_event e "
            "JOIN asset a ON a.id = e.asset_id WHERE e.source_dag_id = %s AND e.source_run_id = %s",
            (DAG_ID, dag_run["run_id"]),
        )
        events = cur.fetchall()
    (name, uri, task_id, extra), *more = events
    assert not more, events
    assert (name, task_id) == ("sentiment_champion", "promote")
    assert uri == f"x-sentiment://mlflow/models/{MODEL}/champion"
    extra = extra if isinstance(extra, dict) else json.loads(extra)
    assert extra["version"] == str(version)
    assert extra["model_name"] == MODEL
    assert extra["previous_version"] is None  # the first champion
    assert extra["pipeline_run_id"] == f"{DAG_ID}/{dag_run['run_id']}"


def test_a_rollback_run_restores_the_earlier_champion_announces_and_mails_it(
    dag_run,
    airflow_env: dict[str, str],
    postgres: PostgresServer,
    mlflow_server: MlflowServer,
    mail: MailServer,
) -> None:
    """``airflow dags test sentiment_rollback`` with its default params after a second version
    became champion (through the CLI's rollback, as a user would): the alias is back on the
    first, the ledger says so, the champion Asset has the event that re-scores, and it is mailed.
    Last in this module: it leaves a second version behind."""
    import mlflow
    import psycopg2
    from mlflow import MlflowClient

    from review_sentiment.ledger import read_ledger
    from review_sentiment.versions import register_version

    client = MlflowClient(mlflow_server.url, mlflow_server.url)
    first = client.get_model_version_by_alias(MODEL, "champion")
    mlflow.set_tracking_uri(mlflow_server.url)
    mlflow.set_registry_uri(mlflow_server.url)
    try:
        second = register_version(first.source, MODEL, pipeline_run_id=None)  # the same logged model
    finally:
        mlflow.set_tracking_uri(None)
        mlflow.set_registry_uri(None)
    client.set_model_version_tag(MODEL, second.version, "gate.decision", "passed")
    cli = [
        sys.executable,
        "-m",
        "review_sentiment",
        "rollback",
        "--to",
        str(second.version),
        "--reason",
        "setup",
    ]
    moved = subprocess.run(cli, env=airflow_env, capture_output=True, text=True, cwd=PROJECT_ROOT)
    assert moved.returncode == 0, moved.stderr[-3000:]
    assert client.get_model_version_by_alias(MODEL, "champion").version == second.version
    mails_before = len(mail.inbox.messages)

    done = airflow(
        airflow_env, "dags", "test", "sentiment_rollback", "-c", json.dumps({"reason": "v2 misbehaves"})
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-5000:]
    assert client.get_model_version_by_alias(MODEL, "champion").version == first.version
    last = read_ledger(client, MODEL)[-1]
    assert (last.kind, last.from_version, last.to_version) == ("rollback", second.version, first.version)
    assert last.run.startswith("sentiment_rollback/")
    assert last.reason == "v2 misbehaves"
    with psycopg2.connect(postgres.url("airflow")) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id "
            "WHERE e.source_dag_id = 'sentiment_rollback' AND a.name = 'sentiment_champion'"
        )
        events = [row[0] if isinstance(row[0], dict) else json.loads(row[0]) for row in cur.fetchall()]
    assert [(e["version"], e["previous_version"]) for e in events] == [(first.version, second.version)]
    (recipients, message), *more = mail.inbox.messages[mails_before:]
    assert not more, [m["Subject"] for _, m in more]
    assert recipients == ["ml-team@example.org"]
    assert message["Subject"].startswith(
        f"[sentiment_rollback] rolled back champion to v{first.version} from v{second.version}"
    )
