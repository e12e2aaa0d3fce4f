"""DAG integrity: it imports cleanly and cheaply, and declares what the scheduler and UI need."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from review_sentiment.config import PROJECT_ROOT
from review_sentiment.decision import RegisterResult
from tests.dags.dag_checks import parse_in_fresh_process, task_body_sizes

DAGS = PROJECT_ROOT / "dags"
DAG_ID = "sentiment_retrain"


@pytest.fixture(scope="module")
def dag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS))
    assert bag.import_errors == {}
    return bag.dags[DAG_ID]


def test_the_two_dags_and_no_helper_is_a_dag_file(dag) -> None:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS))
    assert sorted(bag.dags) == ["sentiment_housekeeping", DAG_ID, "sentiment_rollback", "sentiment_score"]
    # .airflowignore keeps the helper modules out of the DAG processor's parse loop.
    assert not any(
        Path(f).name in ("sentiment_stage.py", "sentiment_assets.py") for f in bag.file_last_changed
    )
    assert dag.doc_md
    assert "ingest" in dag.doc_md


def test_weekly_cron_no_catchup_one_run_at_a_time(dag) -> None:
    from airflow.sdk import CronTriggerTimetable

    assert isinstance(dag.timetable, CronTriggerTimetable)
    assert dag.timetable.expression == "0 3 * * 1"
    # A run covers the week before it: its data interval, which ingest reads up to.
    assert dag.timetable.interval == timedelta(weeks=1)
    assert dag.catchup is False
    assert dag.max_active_runs == 1
    assert dag.dagrun_timeout is not None
    assert {"ml", "mlflow"} <= set(dag.tags)


def test_schedule_comes_from_the_environment() -> None:
    code = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "import sentiment_retrain as m; print(m.dag.timetable.expression)\n"
    )
    env = {**os.environ, "SENTIMENT_SCHEDULE": "30 4 * * 2"}
    done = subprocess.run([sys.executable, "-c", code, str(DAGS)], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "30 4 * * 2"


def test_task_graph(dag) -> None:
    edges = {(t.task_id, d) for t in dag.tasks for d in t.downstream_task_ids}
    assert edges == {
        ("ingest", "preprocess"),
        ("preprocess", "tokenize"),
        ("tokenize", "train"),
        ("tokenize", "register"),
        ("tokenize", "baseline"),
        ("prepare_grid", "train"),
        ("prepare_grid", "baseline"),
        ("train", "register"),
        ("baseline", "register"),
        ("ingest", "register"),  # its snapshot feeds the drift check (and is tagged)
        ("register", "smoke_check"),
        ("smoke_check", "decide"),
        ("register", "decide"),
        ("decide", "gate_passed"),
        ("decide", "approval"),
        ("decide", "gate_refused"),
        ("decide", "smoke_failed"),
        ("decide", "drifted"),
        ("gate_passed", "promote"),
        ("approval", "promote"),
        ("approval", "keep_champion"),
        ("gate_refused", "keep_champion"),
        ("smoke_failed", "keep_champion"),
        ("drifted", "keep_champion"),
        ("monitor_champion", "prepare_grid"),
        ("monitor_champion", "decide"),  # its alert goes into the week's mail and note
    }


def test_train_is_mapped_and_named(dag) -> None:
    from airflow.sdk.definitions.mappedoperator import MappedOperator

    train = dag.get_task("train")
    assert isinstance(train, MappedOperator)
    assert "grid_point_label" in train.map_index_template
    assert not isinstance(dag.get_task("register"), MappedOperator)


def test_retries_and_timeouts(dag) -> None:
    for task in dag.tasks:
        assert task.retries == 3, task.task_id
        assert task.retry_delay == timedelta(seconds=60), task.task_id
        assert task.execution_timeout is not None, task.task_id
        assert task.execution_timeout <= timedelta(hours=1), task.task_id
        assert task.on_failure_callback, task.task_id


def test_params_have_descriptions_and_sections(dag) -> None:
    params = dag.params
    expected = {
        "grid", "max_epochs", "patience", "keep_negations", "use_title", "remove_stopwords", "source",
        "source_conn_id", "weeks_of_data", "sample_fraction", "promotion_floor", "beat_baseline",
        "require_approval", "approval_timeout_hours", "force_promote", "monitoring_floor",
        "monitoring_margin", "noninferiority_margin",
    }  # fmt: skip
    assert set(params.keys()) == expected
    for key in expected:
        param = params.get_param(key)
        assert param.description, key
        assert param.schema.get("section"), key
    assert params["force_promote"] is False
    assert len(params["grid"]) == 4


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("max_epochs", 0),
        ("max_epochs", "ten"),
        ("sample_fraction", 0),
        ("sample_fraction", 1.5),
        ("promotion_floor", 2),
        ("noninferiority_margin", -0.001),
        ("noninferiority_margin", 0.5),
        ("grid", []),
        ("grid", [{"embedding_dim": 0}]),
        ("grid", [{"embedding_dim": 8, "optimizer": "sgd"}]),
        ("force_promote", "yes"),
    ],
)
def test_bad_param_values_are_refused(dag, key: str, value: object) -> None:
    from airflow.sdk.definitions.param import ParamValidationError

    with pytest.raises(ParamValidationError):
        dag.params.get_param(key).resolve(value)


def test_good_param_values_are_accepted(dag) -> None:
    grid = [{"name": "tiny", "embedding_dim": 8, "batch_size": 32}]
    assert dag.params.get_param("grid").resolve(grid) == grid
    assert dag.params.get_param("sample_fraction").resolve(0.1) == 0.1
    assert dag.params.get_param("source").resolve("postgres:public.reviews") == "postgres:public.reviews"


def test_parse_is_fast_and_light() -> None:
    """Parse time after `airflow.sdk` is loaded, and no heavy library imported by the DAG file."""
    result = parse_in_fresh_process("sentiment_retrain")
    assert result["heavy"] == []
    assert result["seconds"] < 1.0


def test_task_bodies_only_call_their_stage() -> None:
    """Each task body is a few lines around one stage call (logic lives in include/)."""
    sizes = task_body_sizes("sentiment_retrain.py")
    assert set(sizes) == {
        "ingest", "preprocess", "tokenize", "prepare_grid", "train", "baseline", "register", "decide",
        "promote", "keep_champion", "monitor_champion", "smoke_check",
    }  # fmt: skip
    assert sum(sizes.values()) / len(sizes) < 8, sizes
    assert max(sizes.values()) <= 12, sizes


def test_promote_announces_the_champion_through_an_alias_outlet(dag) -> None:
    """An Asset outlet would get an event on every success of promote, also when the re-comparison
    kept the champion; the alias gets one only when promote adds it (the champion moved)."""
    from airflow.sdk import Asset, AssetAlias

    promote = dag.get_task("promote")
    assert promote.outlets == [AssetAlias(name="sentiment_champion_moved")]
    # It reads the champion's events: a retry emits one only if no earlier try of the run did.
    assert [a.name for a in promote.inlets] == ["sentiment_champion"]
    for task_id in ("ingest", "monitor_champion"):  # the tasks that read the reviews source
        (inlet,) = dag.get_task(task_id).inlets
        assert isinstance(inlet, Asset)
        assert inlet.name == "sentiment_reviews"
    assert all(not t.outlets for t in dag.tasks if t.task_id != "promote")


def test_the_outcome_tasks_follow_only_the_paths_of_the_branch(dag) -> None:
    """promote and keep_champion join two paths (none_failed_min_one_success): any other upstream
    task, always a success, would make them run on every path."""
    assert dag.get_task("promote").upstream_task_ids == {"gate_passed", "approval"}
    assert dag.get_task("keep_champion").upstream_task_ids == {
        "gate_refused", "approval", "smoke_failed", "drifted",
    }  # fmt: skip
    for task_id in ("promote", "keep_champion"):
        assert dag.get_task(task_id).trigger_rule == "none_failed_min_one_success"


def test_the_smoke_check_stands_between_register_and_the_branch(dag) -> None:
    """Nothing can promote before the smoke check ran: decide waits for it, and it waits for
    register; every way of decide then leads to promote or keep_champion."""
    smoke = dag.get_task("smoke_check")
    assert smoke.upstream_task_ids == {"register"}
    assert smoke.downstream_task_ids == {"decide"}
    assert dag.get_task("decide").upstream_task_ids == {"register", "smoke_check", "monitor_champion"}
    assert "smoke_check" in dag.get_task("promote").upstream_list[0].get_flat_relative_ids(upstream=True)
    assert smoke.execution_timeout <= timedelta(minutes=30)  # the fresh process's own limit is 10 min


# The week's drift reaches XCom as RegisterResult.drift (the drift check's branch adds the field).
_HAS_DRIFT = "drift" in {f.name for f in fields(RegisterResult)}


@pytest.mark.parametrize(
    ("changes", "smoke", "way", "outcome", "reason"),
    [
        # A forced run whose version fails the smoke check: force never promotes it.
        (
            {"force_promote": True},
            {"status": "failed", "passed": False, "reason": "emoji: probability not finite (nan)"},
            "smoke_failed",
            "smoke_failed",
            "smoke check failed: emoji: probability not finite (nan)",
        ),
        pytest.param(
            {"drift": "label share moved by 0.21"}, {"status": "passed", "passed": True, "reason": "ok"},
            "drifted", "drift", "drift: label share moved by 0.21",
            marks=pytest.mark.skipif(not _HAS_DRIFT, reason="RegisterResult has no drift field yet"),
        ),
    ],
)  # fmt: skip
def test_decide_and_keep_champion_follow_the_routing_rule_and_mail_the_outcome(
    dag, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, changes: dict, smoke: dict, way: str, outcome: str,
    reason: str,
) -> None:  # fmt: skip
    """The task bodies wire the package's rule: decide takes the way, keep_champion records its
    outcome and reason on the version (register.keep_champion, stubbed: no MLflow here) and mails
    that outcome (the send, stubbed). Against real servers: tests/integration/test_smoke_on_servers.py."""
    from types import SimpleNamespace

    import sentiment_stage

    from review_sentiment import register

    monkeypatch.setenv("SENTIMENT_ARTIFACT_ROOT", str(tmp_path))
    registered = {**RegisterResult("m", "7", "r", False, "no worse than v6", passed=True).to_dict()}
    registered.update({k: v for k, v in changes.items() if k == "drift"})
    xcom = {
        "register": registered,
        "smoke_check": {"version": "7", **smoke},
        "monitor_champion": {"alert": None},
    }
    params = {**{k: dag.params[k] for k in dag.params}, **{k: v for k, v in changes.items() if k != "drift"}}
    ti = SimpleNamespace(dag_id=DAG_ID, run_id="manual__1", task_id="keep_champion", map_index=-1)
    ti.xcom_pull = lambda task_ids, key="return_value": xcom.get(task_ids)
    context = {
        "ti": ti,
        "dag_run": SimpleNamespace(run_after=datetime(2026, 11, 30, 3, tzinfo=UTC), conf={}),
        "params": params,
        "dag": SimpleNamespace(params=dag.params),
    }  # fmt: skip
    monkeypatch.setattr(sentiment_stage, "get_current_context", lambda: context)
    kept, mailed = [], []
    monkeypatch.setattr(register, "keep_champion", lambda week, *, settings, reason, outcome: kept.append(
        (week.version, outcome, reason)) or week.settled(outcome, reason))  # fmt: skip
    monkeypatch.setattr(sentiment_stage, "send", lambda mail, settings, context: mailed.append(mail) or True)

    assert dag.get_task("decide").python_callable(registered, xcom["smoke_check"], params) == way
    done = dag.get_task("keep_champion").python_callable()
    assert kept == [("7", outcome, reason)]
    assert (done["outcome"], done["reason"], done["promoted"]) == (outcome, reason, False)
    ((mail,),) = [mailed]
    assert (mail.kind, mail.version, mail.reason) == (outcome, "7", reason)


def test_train_runs_in_the_pool_the_init_creates(dag) -> None:
    from review_sentiment.config import PROJECT_ROOT, TRAINING_POOL

    assert dag.get_task("train").pool == TRAINING_POOL
    init = (PROJECT_ROOT / "deploy" / "airflow" / "airflow-init.sh").read_text()
    assert f'airflow pools set {TRAINING_POOL} "$slots"' in init, "the init must create the pool train uses"
    env = (PROJECT_ROOT / "deploy" / "airflow.env").read_text()
    assert "\nSENTIMENT_TRAINING_SLOTS=2\n" in env
