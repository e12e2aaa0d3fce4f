"""The local stack through Airflow's public REST API v2: trigger with a conf, wait, then check the
registry, the extra link to MLflow, authentication and the schedule.

Drives the stack that ``python -m scripts.local_stack up`` (``make stack``) starts: real PostgreSQL, MLflow
server, Airflow api-server, scheduler (LocalExecutor), dag-processor and triggerer.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
import requests

from review_sentiment.config import REGISTERED_MODEL_NAME
from tests.stack.airflow_api import DAG_ID, FinishedRun, parse_time
from tests.stack.conftest import RunningStack
from tests.support.quick_run import QUICK_CONF

pytestmark = [pytest.mark.slow, pytest.mark.integration]

TASKS = {
    "monitor_champion", "ingest", "preprocess", "tokenize", "prepare_grid", "train", "baseline", "register",
    "smoke_check", "decide", "gate_passed", "approval", "gate_refused", "smoke_failed", "drifted", "promote",
    "keep_champion",
}  # fmt: skip
# The first run meets an empty registry: the gate passes, no approval asked, nothing kept.
SKIPPED = {"approval", "gate_refused", "smoke_failed", "drifted", "keep_champion"}


def _mlflow(running_stack: RunningStack):
    from mlflow import MlflowClient

    url = running_stack.stack.mlflow_url
    return MlflowClient(tracking_uri=url, registry_uri=url)


def _next_monday_0300(after: datetime) -> datetime:
    """The first Monday 03:00 UTC strictly after ``after`` (the DAG's cron, 0 3 * * 1)."""
    slot = after.astimezone(UTC).replace(hour=3, minute=0, second=0, microsecond=0)
    slot += timedelta(days=(0 - slot.weekday()) % 7)
    return slot if slot > after else slot + timedelta(days=7)


def test_next_monday_helper() -> None:
    assert _next_monday_0300(datetime(2026, 11, 26, 17, 0, tzinfo=UTC)) == datetime(
        2026, 11, 30, 3, tzinfo=UTC
    )
    assert _next_monday_0300(datetime(2026, 11, 30, 2, 59, tzinfo=UTC)) == datetime(
        2026, 11, 30, 3, tzinfo=UTC
    )
    assert _next_monday_0300(datetime(2026, 11, 30, 3, 0, tzinfo=UTC)) == datetime(2026, 12, 7, 3, tzinfo=UTC)


def test_rest_triggered_run_succeeds(rest_run: FinishedRun) -> None:
    assert rest_run.state == "success", rest_run.states()
    assert rest_run.run["run_type"] == "manual"
    assert rest_run.run["conf"] == QUICK_CONF
    states = rest_run.states()
    assert {task for task, _ in states} == TASKS
    assert {task for (task, _), state in states.items() if state == "skipped"} == SKIPPED, states
    assert {state for (task, _), state in states.items() if task not in SKIPPED} == {"success"}, states
    assert sorted(index for task, index in states if task == "train") == [0, 1]
    # LocalExecutor: a free slot, so the first task starts within seconds of the trigger.
    assert 0 <= rest_run.trigger_to_first_task_s < 60
    assert rest_run.wall_time_s > 0


def test_train_ran_in_the_training_pool_the_init_created(
    rest_run: FinishedRun, running_stack: RunningStack
) -> None:
    pool = running_stack.api.get("/pools/training")
    assert pool["slots"] == 2, pool  # SENTIMENT_TRAINING_SLOTS of deploy/airflow.env
    tis = running_stack.api.task_instances(rest_run.run_id)
    trains = [ti for ti in tis if ti["task_id"] == "train"]
    assert len(trains) == 2
    assert {ti["pool"] for ti in trains} == {"training"}, trains


def test_champion_alias_is_the_version_this_run_registered(
    rest_run: FinishedRun, running_stack: RunningStack
) -> None:
    client = _mlflow(running_stack)
    champion = client.get_model_version_by_alias(REGISTERED_MODEL_NAME, "champion")
    assert champion.tags["pipeline_run_id"] == f"{DAG_ID}/{rest_run.run_id}"
    register = running_stack.api.get(f"/dags/{DAG_ID}/dagRuns/{rest_run.run_id}/taskInstances/register/links")
    assert register["extra_links"]["MLflow model version"] == (
        f"{running_stack.stack.mlflow_url}/#/models/{REGISTERED_MODEL_NAME}/versions/{champion.version}"
    )


def test_train_extra_link_points_to_its_mlflow_run(
    rest_run: FinishedRun, running_stack: RunningStack
) -> None:
    links = running_stack.api.get(
        f"/dags/{DAG_ID}/dagRuns/{rest_run.run_id}/taskInstances/train/links", map_index=0
    )["extra_links"]
    link = links["MLflow run"]
    # MLFLOW_UI_URL from deploy/airflow.env, with the stack's MLflow port.
    prefix = f"{running_stack.stack.mlflow_url}/#/experiments/"
    assert link, links
    assert link.startswith(prefix), links
    experiment_id, _, run_id = link.removeprefix(prefix).partition("/runs/")
    run = _mlflow(running_stack).get_run(run_id)
    assert run.info.experiment_id == experiment_id
    assert run.data.tags["airflow.run_id"] == rest_run.run_id
    assert run.data.tags["airflow.task_id"] == "train"
    assert run.data.tags["airflow.map_index"] == "0"
    assert run.info.status == "FINISHED"
    # The link is only on this DAG's train and register tasks.
    ingest = running_stack.api.get(f"/dags/{DAG_ID}/dagRuns/{rest_run.run_id}/taskInstances/ingest/links")
    assert set(ingest["extra_links"].values()) == {None}


def test_task_logs_are_served_from_the_shared_log_folder(
    rest_run: FinishedRun, running_stack: RunningStack
) -> None:
    """The stack runs no log servers (they bind every interface): the API server reads the files."""
    path = f"/dags/{DAG_ID}/dagRuns/{rest_run.run_id}/taskInstances/register/logs/1"
    logs = running_stack.api.get(path, full_content=True)
    text = "\n".join(
        str(line.get("event", line)) if isinstance(line, dict) else str(line) for line in logs["content"]
    )
    assert str(running_stack.stack.volume("airflow-logs")) in text, "not read from the shared log volume"
    assert re.search(r"^register: .*gate passed", text, re.M), text[-2000:]


def _log_lines(running_stack: RunningStack, run_id: str, ti: dict) -> list[tuple[str, str]]:
    """(level, text) of every line of one try's log, read through the REST API."""
    path = f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{ti['task_id']}/logs/{ti['try_number']}"
    content = running_stack.api.get(path, full_content=True, map_index=ti["map_index"])["content"]
    lines = []
    for line in content:
        if isinstance(line, dict):
            lines.append((str(line.get("level", "")).upper(), str(line.get("event", ""))))
        else:
            match = re.search(r"\b(ERROR|CRITICAL)\b", str(line))
            lines.append((match[1] if match else "", str(line)))
    return lines


def test_a_successful_run_logs_no_error_line(rest_run: FinishedRun, running_stack: RunningStack) -> None:
    """What a user opens first: every task's log of a run that succeeded, as the UI shows it."""
    assert rest_run.state == "success", rest_run.states()
    errors = {}
    for ti in [t for t in rest_run.task_instances if t["state"] != "skipped"]:  # a skipped task has no log
        lines = _log_lines(running_stack, rest_run.run_id, ti)
        assert lines, f"no log for {ti['task_id']}[{ti['map_index']}]"
        bad = [text[:300] for level, text in lines if level in ("ERROR", "CRITICAL")]
        if bad:
            errors[f"{ti['task_id']}[{ti['map_index']}]"] = bad
    assert not errors, "ERROR lines in a successful run's task logs:\n" + "\n".join(
        f"{task}: {line}" for task, lines in errors.items() for line in lines
    )


def test_api_needs_a_token_but_health_is_public(running_stack: RunningStack) -> None:
    base = running_stack.stack.airflow_url
    assert requests.get(f"{base}/api/v2/dags/{DAG_ID}", timeout=30).status_code == 401
    # A token that does not verify is refused too (Airflow 3.3 answers 403 to it).
    forged = {"Authorization": "Bearer not-a-jwt"}
    assert requests.get(f"{base}/api/v2/dags/{DAG_ID}", headers=forged, timeout=30).status_code in {401, 403}
    wrong = {"username": running_stack.secrets["AIRFLOW_ADMIN_USERNAME"], "password": "wrong"}
    assert requests.post(f"{base}/auth/token", json=wrong, timeout=30).status_code == 401
    health = requests.get(f"{base}/api/v2/monitor/health", timeout=30)
    assert health.status_code == 200
    body = health.json()
    for component in ("metadatabase", "scheduler", "triggerer", "dag_processor"):
        assert body[component]["status"] == "healthy", body


def test_next_run_is_the_next_monday_0300_utc(running_stack: RunningStack) -> None:
    dag = running_stack.api.dag()
    assert dag["is_paused"] is False
    assert dag["timetable_summary"] == "0 3 * * 1"
    now = datetime.now(UTC)
    # Either side of a slot passing while the session ran.
    expected = {_next_monday_0300(now), _next_monday_0300(running_stack.started_at)}
    assert parse_time(dag["next_dagrun_run_after"]) in expected, dag
    # The run covers the week before it: its logical date is its data interval's start.
    logical = parse_time(dag["next_dagrun_logical_date"])
    assert logical == parse_time(dag["next_dagrun_run_after"]) - timedelta(weeks=1), dag


def test_first_start_waits_for_the_next_slot(running_stack: RunningStack) -> None:
    """No catch-up run for the latest past Monday: the first scheduled run is the next one."""
    assert running_stack.scheduled_at_start == []
