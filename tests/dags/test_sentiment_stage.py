"""The task helper every DAG task goes through: settings read once, the run-scoped folder, the
MLflow tags, XCom paths kept inside the artifact root, and bad input failed without retries."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest

from review_sentiment import names
from review_sentiment.errors import DataContractError, UnsafePathError


@pytest.fixture
def artifact_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "artifacts"
    (root / "sentiment_retrain" / "run" / "ingest").mkdir(parents=True)
    (root / "sentiment_retrain" / "run" / "ingest" / "reviews.parquet").write_text("x")
    (tmp_path / "secret").mkdir()
    os.symlink(tmp_path / "secret", root / "sentiment_retrain" / "run" / "escape")
    monkeypatch.setenv("SENTIMENT_ARTIFACT_ROOT", str(root))
    return root


@pytest.fixture
def running_task(monkeypatch: pytest.MonkeyPatch) -> dict:
    """The Airflow context of a mapped task instance, as ``get_current_context`` returns it."""
    import sentiment_stage

    context = {
        "ti": SimpleNamespace(dag_id="sentiment_retrain", run_id="manual__1", task_id="train", map_index=2),
        "dag_run": SimpleNamespace(run_after=datetime(2026, 11, 30, 3, tzinfo=UTC), conf={"max_epochs": 3}),
        "params": {"max_epochs": 3, "sample_fraction": 1.0},
        "dag": SimpleNamespace(params={"max_epochs": 50, "sample_fraction": 1.0}),
    }
    monkeypatch.setattr(sentiment_stage, "get_current_context", lambda: context)
    return context


def test_stage_gives_folder_tags_and_params(artifact_root: Path, running_task: dict) -> None:
    from sentiment_stage import stage

    with stage() as s:
        assert s.folder == (artifact_root / "sentiment_retrain" / "manual__1" / "train-2").resolve()
        assert s.tags == {
            names.TAG_DAG_ID: "sentiment_retrain",
            names.TAG_RUN_ID: "manual__1",
            names.TAG_TASK_ID: "train",
            names.TAG_MAP_INDEX: "2",
            names.TAG_WEEK: "2026-W49",
        }
        assert s.params["max_epochs"] == 3
        assert s.pipeline_run_id == "sentiment_retrain/manual__1"
        assert s.mlflow_run["run_name_prefix"] == "2026-W49 "
        assert s.settings.artifact_root == artifact_root


def test_a_pipeline_error_fails_the_task_at_once(artifact_root: Path, running_task: dict) -> None:
    from airflow.sdk.exceptions import AirflowFailException
    from sentiment_stage import stage

    failure = r"^DataContractError: data contract violated"
    with pytest.raises(AirflowFailException, match=failure) as caught, stage():
        raise DataContractError(["no rows"], "table reviews")
    assert isinstance(caught.value.__cause__, DataContractError)


def test_a_conf_key_that_is_not_a_param_fails_the_task_at_once(
    artifact_root: Path, running_task: dict
) -> None:
    from airflow.sdk.exceptions import AirflowFailException
    from sentiment_stage import stage

    running_task["dag_run"].conf = {"epochs": 2, "sample": 0.2, "max_epochs": 2}
    running_task["params"].update(running_task["dag_run"].conf)  # as Airflow merges conf into params
    expected = (
        "ConfigError: unknown conf keys ['epochs', 'sample']; valid keys: ['max_epochs', 'sample_fraction']"
    )
    with pytest.raises(AirflowFailException) as caught, stage():
        pytest.fail("the stage body must not run")
    assert str(caught.value) == expected


def test_other_errors_propagate_to_be_retried(artifact_root: Path, running_task: dict) -> None:
    from sentiment_stage import stage

    with pytest.raises(ConnectionError), stage():
        raise ConnectionError("MLflow unreachable")


@pytest.mark.parametrize(
    "xcom",
    [
        "../secret/x",
        "sentiment_retrain/run/../../../secret/x",
        "/etc/passwd",
        "sentiment_retrain/run/escape/x",
        "sentiment_retrain/run/ingest/reviews.parquet\x00.txt",
    ],
)
def test_tampered_xcom_paths_fail_the_task_without_retry(
    artifact_root: Path, running_task: dict, xcom: str
) -> None:
    from airflow.sdk.exceptions import AirflowFailException
    from sentiment_stage import stage

    with pytest.raises(AirflowFailException) as caught, stage() as s:
        s.path(xcom)
    assert isinstance(caught.value.__cause__, UnsafePathError)
    assert str(caught.value).startswith("UnsafePathError: ")
    assert "\n" not in str(caught.value)


def test_xcom_path_inside_the_root_is_accepted(artifact_root: Path, running_task: dict) -> None:
    from sentiment_stage import stage

    path = artifact_root / "sentiment_retrain" / "run" / "ingest" / "reviews.parquet"
    with stage() as s:
        assert s.path(str(path)) == path.resolve()


@pytest.mark.parametrize(
    ("outcome", "emitted"),
    # kept: the re-comparison under the lock kept the champion; unchanged: a rollback to the champion
    [("promoted", True), ("kept", False), ("rolled_back", True), ("unchanged", False)],
)
def test_promote_emits_the_champion_event_only_when_it_moved(
    artifact_root: Path, running_task: dict, outcome: str, emitted: bool
) -> None:
    from airflow.sdk.execution_time.context import OutletEventAccessors
    from sentiment_assets import CHAMPION, CHAMPION_MOVED
    from sentiment_stage import stage

    running_task["outlet_events"] = events = OutletEventAccessors()
    result = {
        "outcome": outcome,
        "model_name": "customer-sentiment-analysis",
        "version": "5",
        "champion_version": "3",
    }
    with stage() as s:
        assert s.emit_champion_moved(result, CHAMPION_MOVED, CHAMPION) is emitted
    added = events[CHAMPION_MOVED].asset_alias_events
    if not emitted:
        assert added == []
        return
    (event,) = added
    assert event.dest_asset_key.name == CHAMPION.name
    assert event.extra == {
        "model_name": "customer-sentiment-analysis",
        "version": "5",
        "previous_version": "3",
        "pipeline_run_id": "sentiment_retrain/manual__1",
    }


def test_an_asset_triggered_run_rescores_the_days_before_it_and_knows_the_version(
    artifact_root: Path, running_task: dict
) -> None:
    """Airflow 3.3's asset-triggered run: run type asset_triggered, no data interval keys at all."""
    from sentiment_stage import stage

    run_after = datetime(2026, 11, 30, 3, 30, tzinfo=UTC)
    running_task["dag_run"] = SimpleNamespace(run_after=run_after, conf={}, run_type="asset_triggered")
    event = SimpleNamespace(extra={"version": 5, "model_name": "m"})
    running_task["triggering_asset_events"] = {"sentiment_champion": [event]}
    running_task["dag"] = SimpleNamespace(params={})
    with stage() as s:
        window = s.scoring_window(7)
        assert s.announced_version() == "5"
    assert (window.start, window.end) == (datetime(2026, 11, 23, 3, 30, tzinfo=UTC), run_after)


def test_a_scheduled_run_scores_its_interval_and_announces_nothing(
    artifact_root: Path, running_task: dict
) -> None:
    from sentiment_stage import stage

    end = datetime(2026, 11, 30, 5, tzinfo=UTC)
    running_task["dag_run"] = SimpleNamespace(run_after=end, conf={}, run_type="scheduled")
    running_task.update(data_interval_start=datetime(2026, 11, 29, 5, tzinfo=UTC), data_interval_end=end)
    running_task["dag"] = SimpleNamespace(params={})
    with stage() as s:
        window = s.scoring_window(7)
        assert s.announced_version() is None
    assert (window.start, window.end) == (datetime(2026, 11, 29, 5, tzinfo=UTC), end)


class _Events:
    """``inlet_events`` with the given events for any asset."""

    def __init__(self, *extras: dict) -> None:
        self.events = [SimpleNamespace(extra=e) for e in extras]

    def __getitem__(self, asset: object) -> list:
        return self.events


@pytest.mark.parametrize(
    ("earlier", "emitted"),
    [
        ((), True),  # an earlier try moved the alias and crashed before emitting: emit now
        (({"version": "5", "pipeline_run_id": "sentiment_retrain/manual__1"},), False),  # it emitted
        (({"version": "5", "pipeline_run_id": "sentiment_retrain/other"},), True),
    ],
)
def test_a_promote_that_finds_its_version_promoted_emits_only_if_no_try_did(
    artifact_root: Path, running_task: dict, earlier: tuple, emitted: bool
) -> None:
    from airflow.sdk.execution_time.context import OutletEventAccessors
    from sentiment_assets import CHAMPION, CHAMPION_MOVED
    from sentiment_stage import stage

    running_task["outlet_events"] = events = OutletEventAccessors()
    running_task["inlet_events"] = _Events(*earlier)
    result = {
        "outcome": "promoted",
        "reused": True,
        "model_name": "m",
        "version": "5",
        "champion_version": "3",
    }
    with stage() as s:
        assert s.emit_champion_moved(result, CHAMPION_MOVED, CHAMPION) is emitted
    assert len(events[CHAMPION_MOVED].asset_alias_events) == int(emitted)


def test_the_approver_is_the_responder_else_who_triggered_a_forced_run(
    artifact_root: Path, running_task: dict
) -> None:
    from sentiment_stage import stage

    pushed: dict[tuple[str, str], str] = {}
    running_task["ti"].xcom_pull = lambda task_ids, key: pushed.get((task_ids, key))
    running_task["dag_run"].triggering_user_name = "carol"
    with stage() as s:
        assert s.triggering_user == "carol"
        assert s.approver() is None  # no approval, not forced
        running_task["params"]["force_promote"] = True
        assert s.approver() == "carol"
        pushed[("approval", names.XCOM_RESPONDER)] = "alice"
        assert s.approver() == "alice"


def test_the_approval_keeps_who_answered(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.providers.standard.operators.hitl import HITLBranchOperator
    from sentiment_approval import Approval

    monkeypatch.setattr(HITLBranchOperator, "execute_complete", lambda self, context, event: ["promote"])
    approval = Approval(task_id="approval", register_task="register")
    pushed = {}
    ti = SimpleNamespace(xcom_push=lambda key, value: pushed.update({key: value}))
    event = {"chosen_options": ["Approve"], "responded_by_user": {"id": "7", "name": "alice"}}
    assert approval.execute_complete({"ti": ti}, event) == ["promote"]
    assert pushed == {names.XCOM_RESPONDER: "alice"}
    pushed.clear()
    approval.execute_complete({"ti": ti}, {"chosen_options": ["Reject"], "responded_by_user": None})
    assert pushed == {}


def test_the_gate_policy_is_the_runs_promotion_params(artifact_root: Path, running_task: dict) -> None:
    from sentiment_stage import stage

    from review_sentiment.gate import GatePolicy

    promotion = {"promotion_floor": 0.9, "beat_baseline": False, "force_promote": True}
    running_task["params"] = {**promotion, "noninferiority_margin": 0.01}
    running_task["dag_run"].conf = {}
    with stage() as s:
        assert s.gate_policy() == GatePolicy(floor=0.9, beat_baseline=False, force=True, margin=0.01)


@pytest.mark.parametrize("transport", [None, '{"type": "console"}'])
def test_lineage_emits_the_named_datasets_only_when_openlineage_has_a_transport(
    artifact_root: Path, running_task: dict, monkeypatch: pytest.MonkeyPatch, transport: str | None
) -> None:
    from airflow.providers.openlineage import api, conf
    from sentiment_stage import stage

    monkeypatch.delenv("AIRFLOW__OPENLINEAGE__TRANSPORT", raising=False)
    if transport:
        monkeypatch.setenv("AIRFLOW__OPENLINEAGE__TRANSPORT", transport)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://bot:pw@mlflow:5000")
    sent: list[dict] = []
    monkeypatch.setattr(api, "emit_dataset_lineage", lambda **kw: sent.append(kw))
    assert conf.is_disabled() == (transport is None)  # (the provider caches these, but not under pytest)
    with stage() as s:
        s.lineage(inputs=[artifact_root / "a.parquet"], outputs=["runs:/r1", "models:/m/2"])
    if not transport:
        assert sent == []  # off: nothing built, nothing sent
        return
    (call,) = sent
    assert [(d.namespace, d.name, type(d).__name__) for d in call["inputs"]] == [
        ("file", str(artifact_root / "a.parquet"), "InputDataset")
    ]
    assert [(d.namespace, d.name) for d in call["outputs"]] == [
        ("http://mlflow:5000", "runs:/r1"),
        ("http://mlflow:5000", "models:/m/2"),
    ]
