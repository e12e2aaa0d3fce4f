"""DAG integrity of sentiment_score: daily or on the champion Asset, three thin tasks, its Assets,
params, retries and timeouts, and a light, fast parse."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

import pytest

from review_sentiment.config import PROJECT_ROOT
from tests.dags.dag_checks import parse_in_fresh_process, task_body_sizes

DAGS = PROJECT_ROOT / "dags"
DAG_ID = "sentiment_score"


@pytest.fixture(scope="module")
def bag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS))
    assert bag.import_errors == {}
    return bag


@pytest.fixture(scope="module")
def dag(bag):
    return bag.dags[DAG_ID]


def test_doc_comes_from_the_module_docstring(dag) -> None:
    assert dag.doc_md
    assert "resolve_champion" in dag.doc_md
    assert "review_predictions" in dag.doc_md


def test_daily_or_on_the_champion_asset(dag, bag) -> None:
    from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable

    assert isinstance(dag.timetable, AssetOrTimeSchedule)
    daily = dag.timetable.timetable
    assert isinstance(daily, CronTriggerTimetable)
    assert daily.expression == "0 5 * * *"
    assert daily.interval == timedelta(days=1)  # a scheduled run's data interval: the day before
    champion = dag.timetable.asset_condition
    assert champion.name == "sentiment_champion"
    assert champion.uri == "x-sentiment://mlflow/models/customer-sentiment-analysis/champion"
    assert dag.catchup is False
    assert dag.max_active_runs == 1
    assert dag.dagrun_timeout is not None


def test_the_champion_asset_is_the_one_promote_updates() -> None:
    """Both DAGs take the Asset from one module: the alias event promote adds is on this Asset."""
    sys.path.insert(0, str(DAGS))
    import sentiment_assets
    import sentiment_retrain
    import sentiment_score

    assert sentiment_score.dag.timetable.asset_condition == sentiment_assets.CHAMPION
    assert sentiment_retrain.dag.get_task("promote").outlets == [sentiment_assets.CHAMPION_MOVED]


def test_task_graph(dag) -> None:
    edges = {(t.task_id, d) for t in dag.tasks for d in t.downstream_task_ids}
    assert edges == {
        ("resolve_champion", "score"),
        ("resolve_champion", "watch_predictions"),
        ("score", "watch_predictions"),
    }
    # Skipping resolve_champion (no champion) skips the others: the default rule needs its success.
    assert dag.get_task("score").trigger_rule == "all_success"
    assert dag.get_task("watch_predictions").trigger_rule == "all_success"


def test_the_score_task_reads_the_reviews_and_writes_the_predictions_assets(dag) -> None:
    score = dag.get_task("score")
    assert [a.name for a in score.inlets] == ["sentiment_reviews"]
    assert [a.name for a in score.outlets] == ["sentiment_predictions"]
    assert not dag.get_task("resolve_champion").outlets


def test_retries_and_timeouts(dag) -> None:
    for task in dag.tasks:
        assert task.retries == 3, task.task_id
        assert task.retry_delay == timedelta(seconds=60), task.task_id
        assert task.execution_timeout is not None, task.task_id
        assert task.on_failure_callback, task.task_id
    assert dag.get_task("resolve_champion").execution_timeout <= timedelta(minutes=5)


def test_params(dag) -> None:
    from airflow.sdk.definitions.param import ParamValidationError

    params = dag.params
    assert set(params.keys()) == {
        "source", "source_conn_id", "predictions", "predictions_conn_id", "rescore_days", "chunk_rows",
        "psi_alert", "label_share_shift",
    }  # fmt: skip
    for key in params:
        assert params.get_param(key).description, key
        assert params.get_param(key).schema.get("section"), key
    assert params["rescore_days"] == 7
    assert params["chunk_rows"] == 50_000
    assert params["predictions"] == "parquet"  # the embedded default; the stack sets a table
    assert params["psi_alert"] == 0.2
    assert params["label_share_shift"] == 0.10
    assert (
        params.get_param("predictions").resolve("postgres:review_predictions")
        == "postgres:review_predictions"
    )
    bad_values = (("rescore_days", 0), ("predictions", "mysql:x"), ("chunk_rows", 10), ("psi_alert", -1),
                  ("label_share_shift", 1.5))  # fmt: skip
    for key, bad in bad_values:
        with pytest.raises(ParamValidationError):
            params.get_param(key).resolve(bad)


def test_the_target_and_schedule_come_from_the_environment() -> None:
    code = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "import sentiment_score as m\n"
        "print(m.dag.timetable.timetable.expression, m.dag.params['predictions'])\n"
    )
    env = {"SENTIMENT_SCORE_SCHEDULE": "15 6 * * *", "SENTIMENT_PREDICTIONS": "postgres:review_predictions"}
    import os

    done = subprocess.run(
        [sys.executable, "-c", code, str(DAGS)], env={**os.environ, **env}, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "15 6 * * * postgres:review_predictions"


def test_parse_is_fast_and_light() -> None:
    """Parse time after `airflow.sdk` is loaded, and no heavy library imported by the DAG file."""
    result = parse_in_fresh_process("sentiment_score")
    assert result["heavy"] == []
    assert result["seconds"] < 1.0


def test_task_bodies_only_call_their_stage() -> None:
    """Each task body is a few lines around one stage call (logic lives in include/)."""
    sizes = task_body_sizes("sentiment_score.py")
    assert set(sizes) == {"resolve_champion", "score", "watch_predictions"}
    assert max(sizes.values()) <= 14, sizes
