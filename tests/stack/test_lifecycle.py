"""The weekly run's life on the local stack (``make stack``), through Airflow's REST API: a week
whose candidate loses is kept (a green run, one mail), an approval waits and is approved or left
to time out (``test_browser.py`` rejects one in the UI), and a backfill of three past weeks
reproduces each week's training set from the stack's ``reviews`` table.

Every run here follows the REST test's run (``rest_run``), whose version is the champion by then.
Runs are small (one grid point, one epoch, a 30% sample: about 600 test reviews, enough for the
gate's comparison) and follow each other (``max_active_runs=1``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pytest

from review_sentiment.config import REGISTERED_MODEL_NAME
from tests.stack.airflow_api import DAG_ID, AirflowApi, FinishedRun
from tests.stack.conftest import RunningStack, report
from tests.stack.test_reviews_db import _query
from tests.support.measure import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.integration]

SMALL = {
    "sample_fraction": 0.3,
    "max_epochs": 1,
    "beat_baseline": False,
    "grid": [{"name": "small", "embedding_dim": 16, "batch_size": 128, "learning_rate": 0.01}],
}
# One epoch of a 4-dimensional embedding at a small learning rate: above the floor (0.5) but
# far below the champion, so it loses to it on the reviews neither saw.
WEAK = {
    **SMALL,
    "promotion_floor": 0.5,
    "grid": [{"name": "weak", "embedding_dim": 4, "batch_size": 512, "learning_rate": 0.003}],
}
# Forced past the champion, so the gate's verdict does not decide whether the approval is asked;
# three epochs, so the version passes the smoke check, which force does not override (after one
# epoch SMALL scores the canned obvious complaints as recommended: measured 0.88 vs threshold 0.73).
APPROVAL = {**SMALL, "max_epochs": 3, "require_approval": True, "force_promote": True}


def _mlflow(running_stack: RunningStack) -> Any:
    from mlflow import MlflowClient

    url = running_stack.stack.mlflow_url
    return MlflowClient(tracking_uri=url, registry_uri=url)


def _champion(running_stack: RunningStack) -> str:
    return _mlflow(running_stack).get_model_version_by_alias(REGISTERED_MODEL_NAME, "champion").version


def _version_of(running_stack: RunningStack, run_id: str) -> Any:
    [version] = _mlflow(running_stack).search_model_versions(
        f"name = '{REGISTERED_MODEL_NAME}' and tags.`pipeline_run_id` = '{DAG_ID}/{run_id}'"
    )
    return version


def _approval_waiting(running_stack: RunningStack, run_id: str, timeout: float = 600) -> dict[str, Any]:
    """The approval's Human-in-the-loop request, once the task waits for it."""
    api = running_stack.api

    def waiting() -> dict[str, Any] | None:
        states = {t["task_id"]: t["state"] for t in api.task_instances(run_id)}
        if states.get("approval") != "awaiting_input":
            assert api.run(run_id)["state"] in {"queued", "running"}, states  # not finished without it
            return None
        return api.get(f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/approval/-1/hitlDetails")

    request = wait_until(waiting, timeout, f"the approval of {run_id} to wait", interval=2)
    # An answer within a second of the task parking (no human is that quick) races Airflow 3.3's
    # scheduler: it resumes the task before it has seen the parked try end, takes that end for an
    # external kill and retries the task, which asks again. Seen in CI; a human-paced pause.
    time.sleep(10)
    return request


@contextmanager
def approval_run(
    running_stack: RunningStack, conf: dict[str, Any], trigger_as: AirflowApi | None = None
) -> Iterator[str]:
    """Trigger a run that asks for approval (as ``trigger_as``, default the admin); if the test
    fails before the run ends, fail the run, or it would wait for its answer (72 h by default)
    with every later run queued behind it."""
    run_id = (trigger_as or running_stack.api).trigger(conf)["dag_run_id"]
    try:
        yield run_id
    finally:
        if running_stack.api.run(run_id)["state"] in {"queued", "running"}:
            running_stack.api.request("PATCH", f"/dags/{DAG_ID}/dagRuns/{run_id}", json={"state": "failed"})


def _answer(running_stack: RunningStack, run_id: str, option: str) -> None:
    running_stack.api.request(
        "PATCH",
        f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/approval/-1/hitlDetails",
        json={"chosen_options": [option], "params_input": {}},
    )


def _ran(finished: FinishedRun, task: str) -> str:
    return finished.states()[(task, -1)]


def test_a_week_that_loses_to_the_champion_is_kept_and_green(
    rest_run: FinishedRun, running_stack: RunningStack, pytestconfig: pytest.Config
) -> None:
    champion = _champion(running_stack)
    run_id = running_stack.api.trigger(WEAK)["dag_run_id"]
    finished = running_stack.api.wait_for_run(run_id)
    assert finished.state == "success", finished.states()
    assert (_ran(finished, "keep_champion"), _ran(finished, "promote")) == ("success", "skipped")
    assert (_ran(finished, "gate_refused"), _ran(finished, "approval")) == ("success", "skipped")
    assert _champion(running_stack) == champion
    version = _version_of(running_stack, run_id)
    assert (version.tags["gate.decision"], version.tags["outcome"]) == ("refused", "kept")
    # It lost to the champion on the reviews neither saw (the reason may name the floor first).
    tags = version.tags
    assert float(tags["candidate.compared_roc_auc"]) < float(tags["champion.test_roc_auc"]), tags
    assert int(tags["gate.comparison_size"]) >= 500
    expected_link = (
        f"{running_stack.stack.mlflow_url}/#/models/{REGISTERED_MODEL_NAME}/versions/{version.version}"
    )
    for task in ("register", "keep_champion"):
        links = running_stack.api.get(f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{task}/links")
        assert links["extra_links"]["MLflow model version"] == expected_link, (task, links)
    note = running_stack.api.run(run_id)["note"]
    assert note.startswith(f"**kept champion v{champion}**; v{version.version} stays challenger"), note
    [mail] = running_stack.mails_of(run_id)
    assert mail["Subject"].startswith("[sentiment_retrain] kept champion"), mail["Subject"]
    assert expected_link.replace("&", "&amp;") in mail.get_body(("html",)).get_content()
    report(pytestconfig, f"stack: a losing week kept the champion, run green: {finished.timings()}; {note}")


def test_an_approval_waits_and_approving_through_the_rest_api_promotes(
    rest_run: FinishedRun, running_stack: RunningStack
) -> None:
    with approval_run(running_stack, APPROVAL) as run_id:
        request = _approval_waiting(running_stack, run_id)
        version = _version_of(running_stack, run_id).version
        subjects = [m["Subject"] for m in running_stack.mails_of(run_id)]
        _answer(running_stack, run_id, "Approve")
        finished = running_stack.api.wait_for_run(run_id)
    assert request["subject"] == f"Promote {REGISTERED_MODEL_NAME} v{version} to champion?"
    for row in (f"| candidate v{version} |", "| champion v", "| TF-IDF + LR baseline |"):
        assert row in request["body"], request["body"]
    assert f"/#/models/{REGISTERED_MODEL_NAME}/versions/{version}" in request["body"]
    assert len(subjects) == 1, subjects
    assert subjects[0].startswith(f"[sentiment_retrain] approval waiting: v{version}"), subjects
    assert finished.state == "success", finished.states()
    assert (_ran(finished, "promote"), _ran(finished, "keep_champion")) == ("success", "skipped")
    assert _champion(running_stack) == version
    assert _version_of(running_stack, run_id).tags["outcome"] == "promoted"


def test_an_unanswered_approval_times_out_and_keeps_the_champion(
    rest_run: FinishedRun, running_stack: RunningStack, pytestconfig: pytest.Config
) -> None:
    champion = _champion(running_stack)
    with approval_run(running_stack, {**APPROVAL, "approval_timeout_hours": 0.01}) as run_id:  # 36 s
        _approval_waiting(running_stack, run_id)
        waited = time.monotonic()
        finished = running_stack.api.wait_for_run(run_id)
    assert finished.state == "success", finished.states()
    assert (_ran(finished, "keep_champion"), _ran(finished, "promote")) == ("success", "skipped")
    assert _champion(running_stack) == champion
    report(pytestconfig, f"stack: an unanswered approval (36 s timeout) kept the champion "
                         f"{time.monotonic() - waited:.0f} s after it started waiting")  # fmt: skip


def _snapshot_rows(running_stack: RunningStack, run_id: str) -> int:
    folder = running_stack.stack.volume("sentiment-artifacts") / DAG_ID / run_id / "ingest"
    return len(pd.read_parquet(folder / "reviews.parquet"))


def test_a_backfill_of_three_past_weeks_trains_each_on_what_had_arrived_by_then(
    rest_run: FinishedRun, running_stack: RunningStack, pytestconfig: pytest.Config
) -> None:
    api = running_stack.api
    today = datetime.now(UTC).replace(hour=3, minute=0, second=0, microsecond=0)
    last_monday = today - timedelta(days=today.weekday() or 7)
    mondays = [last_monday - timedelta(weeks=n) for n in (3, 2, 1)]
    before = {run["dag_run_id"] for run in api.runs()}
    api.request(
        "POST",
        "/backfills",
        json={"dag_id": DAG_ID, "from_date": mondays[0].isoformat(), "to_date": mondays[-1].isoformat(),
              "dag_run_conf": SMALL, "max_active_runs": 1},
    )  # fmt: skip

    def created() -> list[dict[str, Any]] | None:
        runs = [r for r in api.runs() if r["dag_run_id"] not in before and r["run_type"] == "backfill"]
        return runs if len(runs) == 3 else None

    new = wait_until(created, 120, "three backfill runs")
    finished = [
        api.wait_for_run(run["dag_run_id"]) for run in sorted(new, key=lambda r: r["data_interval_end"])
    ]
    assert [f.state for f in finished] == ["success"] * 3, [f.states() for f in finished]
    # A backfill's dates are the runs' trigger times, the ends of their data intervals.
    ends = [datetime.fromisoformat(f.run["data_interval_end"]) for f in finished]
    assert ends == mondays
    port, password = running_stack.stack.ports["postgres:5432"], running_stack.secrets["REVIEWS_DB_PASSWORD"]
    uri = f"postgresql://reviews:{password}@127.0.0.1:{port}/reviews"
    with_text = (
        "SELECT count(*) FROM reviews WHERE ingested_at < %s AND btrim(coalesce(review_text, '')) <> ''"
    )
    arrived = [_query(uri, with_text, [end])[0][0] for end in ends]
    rows = [_snapshot_rows(running_stack, f.run_id) for f in finished]
    # A 30% sample of each class: the snapshot is that share of what had arrived by the end.
    assert arrived[0] < arrived[1] < arrived[2]
    assert [r / a for r, a in zip(rows, arrived, strict=True)] == pytest.approx([0.3] * 3, abs=0.002)
    # Rerunning one week (its ingest cleared) reproduces its snapshot.
    middle = finished[1].run_id
    api.request("POST", f"/dags/{DAG_ID}/clearTaskInstances",
                json={"dag_run_id": middle, "task_ids": ["ingest"], "only_failed": False, "dry_run": False,
                      "include_downstream": False, "reset_dag_runs": True})  # fmt: skip
    again = api.wait_for_run(middle)
    assert again.state == "success", again.states()
    assert _snapshot_rows(running_stack, middle) == rows[1]
    weeks = [e.date().isoformat() for e in ends]
    report(pytestconfig, f"stack: backfill of the weeks ending {weeks}: reviews arrived {arrived}, "
                         f"snapshots {rows} (30% samples); week 2 rerun: {rows[1]}")  # fmt: skip


def test_the_rest_run_note_and_mail_say_it_promoted(
    rest_run: FinishedRun, running_stack: RunningStack
) -> None:
    note = running_stack.api.run(rest_run.run_id)["note"]
    assert note.startswith("**promoted v"), note
    subjects = [m["Subject"] for m in running_stack.mails_of(rest_run.run_id)]
    assert len(subjects) == 1, subjects
    assert subjects[0].startswith("[sentiment_retrain] promoted v"), subjects


def test_champion_monitoring_logged_a_point_for_each_week_with_a_champion(
    running_stack: RunningStack,
) -> None:
    client = _mlflow(running_stack)
    experiment = client.get_experiment_by_name("sentiment-retrain")
    runs = client.search_runs([experiment.experiment_id], "tags.`sentiment.role` = 'monitor'")
    assert runs, "no monitoring series"
    points = [m for run in runs for m in client.get_metric_history(run.info.run_id, "monitor_roc_auc")]
    assert points
    assert all(0.5 < m.value <= 1.0 for m in points), [m.value for m in points]
    assert all(200000 < m.step < 300000 for m in points)
