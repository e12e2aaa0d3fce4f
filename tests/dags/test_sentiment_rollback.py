"""DAG integrity of sentiment_rollback: manual only, its params (a required reason), its one thin
task on the champion Asset, the failure mail, and a light, fast parse."""

from __future__ import annotations

from datetime import timedelta

import pytest

from review_sentiment import task_ids
from review_sentiment.config import PROJECT_ROOT, ROLLBACK_DAG_ID
from tests.dags.dag_checks import parse_in_fresh_process, task_body_sizes

DAGS = PROJECT_ROOT / "dags"


@pytest.fixture(scope="module")
def dag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS))
    assert bag.import_errors == {}
    return bag.dags[ROLLBACK_DAG_ID]


def test_manual_only_and_documented(dag) -> None:
    from airflow.sdk.definitions.timetables.simple import NullTimetable

    assert ROLLBACK_DAG_ID == "sentiment_rollback"
    assert isinstance(dag.timetable, NullTimetable)  # schedule=None
    assert dag.max_active_runs == 1
    assert dag.on_failure_callback  # a refused rollback fails the run, and the failure is mailed
    assert "promotion lock" in dag.doc_md
    assert "ledger" in dag.doc_md


def test_one_task_on_the_champion_asset(dag) -> None:
    import sentiment_assets

    assert [t.task_id for t in dag.tasks] == [task_ids.ROLLBACK] == ["rollback"]
    task = dag.get_task(task_ids.ROLLBACK)
    assert task.outlets == [sentiment_assets.CHAMPION_MOVED]
    assert task.inlets == [sentiment_assets.CHAMPION]  # to see an earlier try's event
    assert task.retries == 3
    assert task.execution_timeout == timedelta(minutes=10)


def test_params(dag) -> None:
    from airflow.sdk.definitions.param import ParamValidationError

    params = dag.params
    assert set(params.keys()) == {"to_version", "reason", "force"}
    for key in params:
        assert params.get_param(key).description, key
    assert params["to_version"] == ""  # the previous champion in the ledger
    assert params["force"] is False
    assert params.get_param("to_version").resolve("12") == "12"
    assert params.get_param("to_version").resolve("v3") == "v3"
    # Optional in the trigger form (a type without "null" marks a field required there, and an
    # empty required field disables Trigger); a cleared field arrives as null.
    assert "null" in params.get_param("to_version").schema["type"]
    assert params.get_param("to_version").resolve(None) is None
    assert params.get_param("reason").resolve("v4 flags every dress") == "v4 flags every dress"
    for key, bad in (("reason", ""), ("reason", None), ("to_version", "latest"), ("to_version", "-1")):
        with pytest.raises(ParamValidationError):
            params.get_param(key).resolve(bad)


def test_parse_is_fast_and_light() -> None:
    result = parse_in_fresh_process("sentiment_rollback")
    assert result["heavy"] == []
    assert result["seconds"] < 1.0


def test_task_body_only_calls_its_stage() -> None:
    sizes = task_body_sizes("sentiment_rollback.py")
    assert set(sizes) == {"rollback"}
    assert max(sizes.values()) <= 14, sizes
