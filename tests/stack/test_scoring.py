"""The champion in use on the local stack (``make stack``): a promotion in ``sentiment_retrain``
updates the champion Asset, the scheduler starts ``sentiment_score`` for it, and the run re-scores
the last 7 days of the ``reviews`` table into ``review_predictions`` with the new version; a
rerun of that run replaces its rows rather than adding to them.

Then the day after, as a user lives it: v1 was promoted (the REST run, the session's first
champion), v2 after it (a later run of the session), and v2 misbehaves: the user rolls back to v1
from the UI (``sentiment_rollback``'s trigger form), the re-score that follows runs under v1, and
the champion ledger (``python -m review_sentiment history``) shows the three moves.

The session's earlier runs promote (the REST run, the approved run), so by now the champion has
moved at least once; the first test follows the run its last move triggered, and the rollback
comes after it (the order of this module), so that it follows a promotion, not a rollback.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from datetime import datetime, timedelta
from typing import Any

import pytest

from review_sentiment.config import REGISTERED_MODEL_NAME, ROLLBACK_DAG_ID
from tests.stack.airflow_api import DAG_ID, FinishedRun, parse_time
from tests.stack.conftest import RunningStack, logged_in_page, report, screenshot
from tests.stack.test_lifecycle import _champion, _mlflow, _ran, _version_of
from tests.stack.test_reviews_db import _query
from tests.support.measure import wait_until
from tests.support.quick_run import QUICK_CONF

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


def _pinned_version(running_stack: RunningStack, run_id: str) -> str:
    """The version a score run's ``resolve_champion`` pinned for the whole run."""
    pinned = running_stack.api.get(
        f"/dags/{SCORE_DAG}/dagRuns/{run_id}/taskInstances/resolve_champion/xcomEntries/return_value"
    )["value"]
    pinned = json.loads(pinned) if isinstance(pinned, str) else pinned
    return str(pinned["version"])


def _window_reviews(uri: str, run_after: datetime) -> int:
    """The reviews (with text) that arrived in the re-score window ending at ``run_after``."""
    [(count,)] = _query(
        uri,
        "SELECT count(*) FROM reviews WHERE ingested_at >= %s AND ingested_at < %s "
        "AND btrim(coalesce(review_text, '')) <> ''",
        [run_after - timedelta(days=RESCORE_DAYS), run_after],
    )
    return count


def _scored_by_run(uri: str, run_id: str) -> tuple[int, int, list[str]]:
    """A score run's predictions: rows, distinct reviews, and the versions that scored them."""
    [(rows, reviews, versions)] = _query(
        uri,
        "SELECT count(*), count(DISTINCT review_id), coalesce(array_agg(DISTINCT model_version), '{}') "
        "FROM review_predictions WHERE dag_run_id = %s",
        [f"{SCORE_DAG}/{run_id}"],
    )
    return rows, reviews, sorted(str(v) for v in versions)


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
    assert _pinned_version(running_stack, run_id) == champion.version

    uri = _reviews_uri(running_stack)
    window_reviews = _window_reviews(uri, run_after)
    assert window_reviews > 1000  # a week of the 12 the loader spread the reviews over
    # One row per review of the window, all under the new version.
    assert _scored_by_run(uri, run_id) == (window_reviews, window_reviews, [champion.version])
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


def _second_champion(running_stack: RunningStack, first: str, pytestconfig: pytest.Config) -> str:
    """The champion promoted after ``first``: in the whole session a later test's run (the Celery
    run, the approved run) already promoted one; only when this module runs alone does a forced
    quick run promote it here."""
    champion = _champion(running_stack)
    if champion != first:
        return champion
    run_id = running_stack.api.trigger({**QUICK_CONF, "force_promote": True})["dag_run_id"]
    finished = running_stack.api.wait_for_run(run_id)
    assert (finished.state, _ran(finished, "promote")) == ("success", "success"), finished.states()
    report(pytestconfig, f"stack: no promotion after v{first} yet: a forced quick run promoted one "
                         f"(not part of the scenario's time): {finished.timings()}")  # fmt: skip
    return _champion(running_stack)


def _trigger_rollback_in_the_ui(page: Any, version: str, reason: str) -> None:
    """The user's part: ``sentiment_rollback``'s trigger form, Version and Reason typed, Trigger."""
    from playwright.sync_api import expect

    page.get_by_role("button", name="Trigger Dag").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_text(f"Trigger Dag - {ROLLBACK_DAG_ID}")).to_be_visible()
    trigger = dialog.get_by_role("button", name="Trigger", exact=True)
    # A string field's label is not tied to its input: the textbox of the group its title opens.
    field = {
        name: dialog.get_by_role("group").filter(has_text=re.compile(rf"^{name}")).get_by_role("textbox")
        for name in ("Version", "Reason")
    }
    expect(field["Version"]).to_have_value("")
    expect(trigger).to_be_disabled()  # the reason is required
    field["Reason"].fill(reason)
    field["Reason"].press("Tab")
    # An empty Version (the previous champion in the ledger) must not block the form.
    expect(trigger).to_be_enabled()
    field["Version"].fill(version)
    field["Version"].press("Tab")
    dialog.get_by_role("heading", name=f"Trigger Dag - {ROLLBACK_DAG_ID}").click()  # no focus ring
    screenshot(page, "rollback-form.png")
    trigger.click()
    page.wait_for_url(re.compile(rf".*/dags/{ROLLBACK_DAG_ID}/runs/.+"))


def _rescore_run_of(running_stack: RunningStack, rollback_run_id: str) -> str:
    """The ``sentiment_score`` run the rollback's champion event started."""
    api = running_stack.api

    def created() -> str | None:
        [event] = api.get("/assets/events", source_dag_id=ROLLBACK_DAG_ID, source_run_id=rollback_run_id)[
            "asset_events"
        ]
        runs = [r["run_id"] for r in event["created_dagruns"] if r["dag_id"] == SCORE_DAG]
        return runs[0] if runs else None

    return wait_until(created, 300, f"the {SCORE_DAG} run of {rollback_run_id}'s champion event", interval=2)


def _history(running_stack: RunningStack) -> str:
    """``python -m review_sentiment history`` against the stack's MLflow, as a user runs it."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": running_stack.stack.mlflow_url,
           "SENTIMENT_MODEL_NAME": REGISTERED_MODEL_NAME}  # fmt: skip
    done = subprocess.run([sys.executable, "-m", "review_sentiment", "history"], env=env,
                          capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_a_rollback_from_the_ui_restores_v1_rescores_with_it_and_the_ledger_shows_three_moves(
    rest_run: FinishedRun, running_stack: RunningStack, browser: Any, pytestconfig: pytest.Config
) -> None:
    from review_sentiment.ledger import KIND_PROMOTED, KIND_ROLLBACK, read_ledger

    api, client = running_stack.api, _mlflow(running_stack)
    v1 = _version_of(running_stack, rest_run.run_id)
    assert v1.tags["gate.decision"] == "passed"  # the session's first champion, on the floor alone
    v1 = v1.version
    v2 = _second_champion(running_stack, v1, pytestconfig)
    started = time.monotonic()
    before = {r["dag_run_id"] for r in api.get(f"/dags/{ROLLBACK_DAG_ID}/dagRuns", limit=100)["dag_runs"]}
    reason = f"v{v2} calls every dress review a complaint: back to v{v1}"

    with logged_in_page(browser, running_stack, ROLLBACK_DAG_ID) as page:
        _trigger_rollback_in_the_ui(page, v1, reason)
    [run] = [r for r in api.get(f"/dags/{ROLLBACK_DAG_ID}/dagRuns", limit=100)["dag_runs"]
             if r["dag_run_id"] not in before]  # fmt: skip
    run_id = run["dag_run_id"]
    conf = {key: run["conf"].get(key) for key in ("to_version", "reason", "force")}
    assert (run["run_type"], conf) == ("manual", {"to_version": v1, "reason": reason, "force": False})
    rolled = api.wait_for_run(run_id, timeout=300, dag_id=ROLLBACK_DAG_ID)
    assert rolled.state == "success", rolled.states()
    assert _champion(running_stack) == v1
    [mail] = running_stack.mails_of(run_id)
    assert mail["Subject"].startswith(f"[{ROLLBACK_DAG_ID}] rolled back champion to v{v1} from v{v2}")
    ui_done = time.monotonic()

    # The re-score its champion event started runs under v1, for every review of the window.
    score_run = _rescore_run_of(running_stack, run_id)
    finished = _finished_score_run(running_stack, score_run)
    assert (finished["state"], finished["run_type"]) == ("success", "asset_triggered"), finished
    assert _pinned_version(running_stack, score_run) == v1
    uri = _reviews_uri(running_stack)
    window = _window_reviews(uri, parse_time(finished["run_after"]))
    assert window > 1000
    assert _scored_by_run(uri, score_run) == (window, window, [v1])
    rescored = time.monotonic()

    # The ledger: v1's promotion first, v2's promotion, the rollback last; every move once, each
    # from where the one before left the alias, and one champion event per move.
    entries = read_ledger(client, REGISTERED_MODEL_NAME)
    assert [e.seq for e in entries] == list(range(1, len(entries) + 1))
    assert [e.from_version for e in entries[1:]] == [e.to_version for e in entries[:-1]]
    first, promoted, rollback = entries[0], entries[-2], entries[-1]
    assert (first.from_version, first.to_version, first.kind, first.run) == (
        None, v1, KIND_PROMOTED, f"{DAG_ID}/{rest_run.run_id}")  # fmt: skip
    assert promoted.to_version == v2
    assert promoted.run.startswith(f"{DAG_ID}/")
    assert (rollback.from_version, rollback.to_version, rollback.kind) == (v2, v1, KIND_ROLLBACK)
    assert (rollback.run, rollback.reason) == (f"{ROLLBACK_DAG_ID}/{run_id}", reason)
    assert rollback.by == running_stack.secrets["AIRFLOW_ADMIN_USERNAME"]  # who pressed Trigger
    [asset] = [a for a in api.get("/assets", limit=100)["assets"] if a["name"] == "sentiment_champion"]
    events = sorted(
        api.get("/assets/events", asset_id=asset["id"], limit=100)["asset_events"], key=lambda e: e["id"]
    )
    assert [(e["extra"]["version"], e["extra"]["pipeline_run_id"]) for e in events] == [
        (e.to_version, e.run) for e in entries
    ]
    history = _history(running_stack).splitlines()
    for entry in (first, promoted, rollback):
        assert entry.line() in history, (entry.line(), history)
    assert history[-1] == f"champion now: v{v1}"
    report(
        pytestconfig,
        f"stack: v{v1} promoted, v{v2} promoted, rolled back to v{v1} in the UI: rollback run "
        f"{rolled.wall_time_s:.1f} s, {SCORE_DAG} {score_run} re-scored {window} reviews under v{v1}; "
        f"ledger {len(entries)} moves; the scenario took {time.monotonic() - started:.0f} s "
        f"(UI and rollback {ui_done - started:.0f} s, re-score {rescored - ui_done:.0f} s)",
    )
