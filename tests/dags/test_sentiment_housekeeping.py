"""DAG integrity of sentiment_housekeeping: weekly on Sundays, its params (the package's
defaults), one thin task, the failure mail, and a light, fast parse."""

from __future__ import annotations

from datetime import timedelta

import pytest

from review_sentiment import config, task_ids
from review_sentiment.housekeeping_plan import Policy
from tests.dags.dag_checks import parse_in_fresh_process, task_body_sizes

DAGS = config.PROJECT_ROOT / "dags"


@pytest.fixture(scope="module")
def dag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS))
    assert bag.import_errors == {}
    return bag.dags[config.HOUSEKEEPING_DAG_ID]


def test_weekly_and_documented(dag) -> None:
    from airflow.sdk import CronTriggerTimetable

    assert config.HOUSEKEEPING_DAG_ID == "sentiment_housekeeping"
    assert isinstance(dag.timetable, CronTriggerTimetable)
    assert dag.timetable.expression == "0 6 * * 0" == config.DEFAULT_HOUSEKEEPING_SCHEDULE  # Sundays
    assert dag.timetable.interval == timedelta(weeks=1)
    assert dag.catchup is False
    assert dag.max_active_runs == 1
    assert dag.on_failure_callback  # a failed pass is mailed
    for words in ("trash", "promotion lock", "Never touches", "sentiment-housekeeping", "--dry-run"):
        assert words in dag.doc_md


def test_one_task(dag) -> None:
    assert [t.task_id for t in dag.tasks] == [task_ids.HOUSEKEEPING] == ["housekeeping"]
    task = dag.get_task(task_ids.HOUSEKEEPING)
    assert task.retries == 3  # a retry completes an interrupted pass
    assert task.execution_timeout == timedelta(minutes=30)
    assert dag.dagrun_timeout == timedelta(hours=2)


def test_params_default_to_the_package_policy(dag) -> None:
    from airflow.sdk.definitions.param import ParamValidationError

    params = dag.params
    assert set(params.keys()) == {"keep_weeks", "challenger_weeks", "keep_champions", "dry_run"}
    for key in params:
        assert params.get_param(key).description, key
    policy = Policy(params["keep_weeks"], params["challenger_weeks"], params["keep_champions"])
    assert policy == Policy()
    assert params["dry_run"] is False
    for key, bad in (
        ("keep_weeks", 0),
        ("keep_champions", 0),
        ("challenger_weeks", "x"),
        ("keep_weeks", 1.5),
    ):
        with pytest.raises(ParamValidationError):
            params.get_param(key).resolve(bad)


def test_parse_is_fast_and_light() -> None:
    result = parse_in_fresh_process("sentiment_housekeeping")
    assert result["heavy"] == []
    assert result["seconds"] < 1.0


def test_task_body_only_calls_its_stage() -> None:
    sizes = task_body_sizes("sentiment_housekeeping.py")
    assert set(sizes) == {"housekeeping"}
    assert max(sizes.values()) <= 12, sizes
