"""The champion in use on the local stack (``make stack``): a promotion in ``sentiment_retrain``
updates the champion Asset, the scheduler starts ``sentiment_score`` for it, and the run re-scores
the last 7 days of the ``reviews`` table into ``review_predictions`` with the new version; a
rerun of that run replaces its rows rather than adding to them.

The session's earlier runs promote (the REST run, the approved run), so by now the champion has
moved at least once; the test follows the run its last move triggered.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest

from review_sentiment.config import REGISTERED_MODEL_NAME
from tests.stack.airflow_api import DAG_ID, parse_time
from tests.stack.conftest import RunningStack, report
from tests.stack.test_reviews_db import _query
from tests.support.measure import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.integration]

SCORE_DAG = "sentiment_score"
RESCORE_DAYS = 7  # the DAG's default


def _reviews_uri(running_stack: RunningStack) -> str:
    port, password = running_stack.stack.ports["postgres:5432"], running_stack.secrets["REVIEWS_DB_PASSWORD"]
    return f"postgresql://reviews:{password}@127.0.0.1:{port}/reviews"


def _score_runs(running_stack: RunningStack) -> list[dict[str, Any]]:
    return running_stack.api.get(f"/dags/{SCORE_DAG}/dagRuns", limit=100)["dag_runs"]


def _finished_score_run(running_stack: RunningStack, run_id: str, timeout: float = 600) -> dict[str, Any]:
    api = running_stack.api

    def finished() -> dict[str, Any] | None:
        run = api.get(f"/dags/{SCORE_DAG}/dagRuns/{run_id}")
        return run if run["state"] in {"success", "failed"} else None

    return wait_until(finished, timeout, f"{SCORE_DAG} run {run_id} to finish", interval=2)


def _promoted_at(running_stack: RunningStack, version: Any) -> datetime:
    """When the retrain run that made ``version`` champion ended its promote task."""
    pipeline_run = version.tags["pipeline_run_id"]
    dag_id, run_id = pipeline_run.split("/", 1)
    assert dag_id == DAG_ID
    ti = running_stack.api.get(f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/promote")
    assert ti["state"] == "success", ti
    return parse_time(ti["end_date"])


def _predictions(uri: str, version: str) -> tuple[int, int, datetime | None]:
    [(rows, runs, last)] = _query(
        uri,
        "SELECT count(*), count(DISTINCT dag_run_id), max(scored_at) FROM review_predictions "
        "WHERE model_version = %s",
        [version],
    )
    return rows, runs, last


def test_a_promotion_rescores_the_last_week_with_the_new_champion(
    rest_run: Any, running_stack: RunningStack, pytestconfig: pytest.Config
) -> None:
    from mlflow import MlflowClient

    url = running_stack.stack.mlflow_url
    client = MlflowClient(tracking_uri=url, registry_uri=url)
    champion = client.get_model_version_by_alias(REGISTERED_MODEL_NAME, "champion")
    # The event is queued as promote succeeds, a moment before its end_date is written.
    promoted_at = _promoted_at(running_stack, champion) - timedelta(seconds=30)

    def triggered() -> dict[str, Any] | None:
        runs = [
            r
            for r in _score_runs(running_stack)
            if r["run_type"] == "asset_triggered" and parse_time(r["run_after"]) >= promoted_at
        ]
        return min(runs, key=lambda r: r["run_after"]) if runs else None

    waited_for = f"an asset-triggered {SCORE_DAG} run after v{champion.version}'s promotion"
    run = wait_until(triggered, 300, waited_for)
    run_id = run["dag_run_id"]
    finished = _finished_score_run(running_stack, run_id)
    assert finished["state"] == "success", finished
    # An asset-triggered run has no data interval: it re-scores the days before its trigger.
    assert finished["logical_date"] is None
    run_after = parse_time(finished["run_after"])
    pinned = running_stack.api.get(
        f"/dags/{SCORE_DAG}/dagRuns/{run_id}/taskInstances/resolve_champion/xcomEntries/return_value"
    )["value"]
    pinned = json.loads(pinned) if isinstance(pinned, str) else pinned
    assert str(pinned["version"]) == champion.version, pinned

    uri = _reviews_uri(running_stack)
    [(window_reviews,)] = _query(
        uri,
        "SELECT count(*) FROM reviews WHERE ingested_at >= %s AND ingested_at < %s "
        "AND btrim(coalesce(review_text, '')) <> ''",
        [run_after - timedelta(days=RESCORE_DAYS), run_after],
    )
    assert window_reviews > 1000  # a week of the 12 the loader spread the reviews over
    [(of_run, distinct_reviews, versions)] = _query(
        uri,
        "SELECT count(*), count(DISTINCT review_id), count(DISTINCT model_version) FROM review_predictions "
        "WHERE dag_run_id = %s",
        [f"{SCORE_DAG}/{run_id}"],
    )
    # One row per review of the window, all under the new version.
    assert (of_run, distinct_reviews, versions) == (window_reviews, window_reviews, 1)
    rows, _, scored_at = _predictions(uri, champion.version)
    assert rows == window_reviews

    # A rerun of the same run replaces its rows: same count, newer scored_at.
    running_stack.api.request(
        "POST",
        f"/dags/{SCORE_DAG}/clearTaskInstances",
        json={"dag_run_id": run_id, "task_ids": ["score"], "only_failed": False, "dry_run": False,
              "include_downstream": False, "reset_dag_runs": True},
    )  # fmt: skip
    wait_until(
        lambda: _predictions(uri, champion.version)[2] != scored_at, 600, "the cleared score task to rewrite"
    )
    again = _finished_score_run(running_stack, run_id)
    assert again["state"] == "success", again
    rows_again, _, scored_again = _predictions(uri, champion.version)
    assert rows_again == rows
    assert scored_again > scored_at
    report(
        pytestconfig,
        f"stack: v{champion.version}'s promotion triggered {run_id} "
        f"(run_after {finished['run_after']}); it scored the {window_reviews} reviews of the last "
        f"{RESCORE_DAYS} days; the rerun left {rows_again} rows",
    )
