"""The README's embedded path, run as ``make smoke`` runs it: scripts/run_local.sh with the quick-run
conf (Airflow on SQLite, MLflow's SQLite store and local artifacts, the real review file,
``airflow dags test``), in a temporary state folder instead of the user's .local.

It asserts a green DAG run and a registered model version holding the ``champion`` alias: the
quick conf's floor (0.5) lets a first candidate through, so a missing champion is a broken path.
The same run has OpenLineage on (its one setting, ``AIRFLOW__OPENLINEAGE__TRANSPORT``: a file
transport), and its events must chain the review file -> snapshot -> cleaned reviews -> manifest
-> MLflow runs -> model version -> champion alias.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from review_sentiment import task_ids as ids
from review_sentiment.config import CHAMPION_ALIAS, PROJECT_ROOT, REGISTERED_MODEL_NAME, RETRAIN_DAG_ID
from tests.support import measure
from tests.support.quick_run import QUICK_CONF, QUICK_CONF_PATH

RUN_LOCAL = PROJECT_ROOT / "scripts" / "run_local.sh"
# Where the caller's environment would point run_local.sh elsewhere than the state folder.
ARTIFACTS = PROJECT_ROOT / "test-artifacts" / "integration"
STATE_VARIABLES = ("AIRFLOW_HOME", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "MLFLOW_TRACKING_URI",
                   "SENTIMENT_ARTIFACT_ROOT", "SENTIMENT_MODEL_NAME", "SENTIMENT_SOURCE")  # fmt: skip


def test_make_smoke_is_run_local_with_the_quick_conf() -> None:
    recipe = re.search(r"^smoke:.*\n\t(.+)$", (PROJECT_ROOT / "Makefile").read_text(), re.M)
    assert recipe, "the Makefile has no smoke target"
    rel = QUICK_CONF_PATH.relative_to(PROJECT_ROOT)
    assert recipe[1] == f"{RUN_LOCAL.relative_to(PROJECT_ROOT)} -c '$(shell cat {rel})'"


@dataclass(frozen=True)
class SmokeRun:
    """One ``make smoke`` run, shared by the tests of this module."""

    done: subprocess.CompletedProcess[str]
    state: Path
    seconds: float
    lineage_log: Path  # the OpenLineage file transport's events, one JSON a line

    @property
    def output(self) -> str:
        return f"{self.done.stdout[-4000:]}\n{self.done.stderr[-6000:]}"


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory, real_reviews_path: Path) -> SmokeRun:
    """``make smoke`` once, with OpenLineage on (its one setting: a file transport), so the same
    DAG run serves the champion and the lineage assertions."""
    state = tmp_path_factory.mktemp("smoke") / "local"
    lineage_log = state.parent / "openlineage.jsonl"
    env = {k: v for k, v in os.environ.items() if k not in STATE_VARIABLES and "OPENLINEAGE" not in k}
    env.update(SENTIMENT_LOCAL_STATE=str(state), REVIEWS_PATH=str(real_reviews_path), PY=sys.executable)
    env["AIRFLOW__OPENLINEAGE__TRANSPORT"] = json.dumps(
        {"type": "file", "log_file_path": str(lineage_log), "append": True}
    )
    started = time.monotonic()
    done = subprocess.run(
        [str(RUN_LOCAL), "-c", QUICK_CONF_PATH.read_text()], env=env, cwd=PROJECT_ROOT,
        capture_output=True, text=True, timeout=1500, check=False,
    )  # fmt: skip
    return SmokeRun(done, state, time.monotonic() - started, lineage_log)


@pytest.mark.slow
def test_make_smoke_registers_a_champion(smoke_run: SmokeRun, pytestconfig: pytest.Config) -> None:
    done, state, seconds, output = smoke_run.done, smoke_run.state, smoke_run.seconds, smoke_run.output
    assert done.returncode == 0, output

    with sqlite3.connect(state / "airflow" / "airflow.db") as db:
        runs = db.execute("SELECT state FROM dag_run WHERE dag_id = ?", (RETRAIN_DAG_ID,)).fetchall()
        tasks = db.execute("SELECT task_id, map_index, state FROM task_instance").fetchall()
    assert runs == [("success",)], output
    # The week's outcome is a branch: the branches not taken end skipped.
    assert {task_state for _, _, task_state in tasks} <= {"success", "skipped"}, tasks

    from mlflow import MlflowClient

    store = f"sqlite:///{state / 'mlflow' / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=store, registry_uri=store)
    versions = client.search_model_versions(f"name = '{REGISTERED_MODEL_NAME}'")
    assert versions, f"no version of {REGISTERED_MODEL_NAME} in {store}"
    champion = client.get_model_version_by_alias(REGISTERED_MODEL_NAME, CHAMPION_ALIAS)
    assert champion.version in {v.version for v in versions}
    # run_local.sh ends by printing the champion, as `make smoke` shows it to its user.
    assert f"champion: {REGISTERED_MODEL_NAME} version {champion.version} " in done.stdout, output
    measure.report(pytestconfig, f"embedded: make smoke's run (quick conf) took {seconds:.0f} s", ARTIFACTS)


def _datasets_by_task(log: Path) -> dict[str, dict[str, Any]]:
    """The run's OpenLineage task events, per Airflow task id: the event types and the datasets
    (``(namespace, name)``) over all its events (the provider's RUNNING event carries them)."""
    found: dict[str, dict[str, Any]] = {}
    for line in log.read_text().splitlines():
        event = json.loads(line)
        dag, _, task = event["job"]["name"].partition(".")
        if dag != RETRAIN_DAG_ID or not task:
            continue
        seen = found.setdefault(task, {"types": set(), "runs": set(), "inputs": set(), "outputs": set()})
        seen["types"].add(event["eventType"])
        seen["runs"].add(event["run"]["runId"])
        for side in ("inputs", "outputs"):
            seen[side] |= {(d["namespace"], d["name"]) for d in event.get(side) or []}
    return found


@pytest.mark.slow
def test_the_runs_lineage_events_chain_source_snapshot_splits_model_version(
    smoke_run: SmokeRun, real_reviews_path: Path
) -> None:
    assert smoke_run.done.returncode == 0, smoke_run.output
    assert smoke_run.lineage_log.is_file(), "OpenLineage was on but wrote no event"
    tasks = _datasets_by_task(smoke_run.lineage_log)
    for task_id in (ids.INGEST, ids.PREPROCESS, ids.TOKENIZE, ids.REGISTER, ids.PROMOTE):
        assert {"START", "RUNNING", "COMPLETE"} <= tasks[task_id]["types"], (task_id, tasks[task_id])
    ingest, prep, tok = tasks[ids.INGEST], tasks[ids.PREPROCESS], tasks[ids.TOKENIZE]
    # source -> snapshot: the review file by its absolute path, in the spec's "file" namespace.
    assert ingest["inputs"] == {("file", str(real_reviews_path.resolve()))}, ingest
    snapshot = {d for d in ingest["outputs"] if d[1].endswith(".parquet") and "label" not in d[1]}
    assert len(snapshot) == 1, ingest
    # snapshot -> cleaned -> manifest (the splits): each output is the next task's input.
    assert prep["inputs"] == snapshot, prep
    assert tok["inputs"] == prep["outputs"], (prep, tok)
    (manifest,) = tok["outputs"]
    assert manifest[0] == "file", tok
    # manifest -> MLflow runs (one a grid point) -> the model version the registry holds.
    train, register, promote = tasks[ids.TRAIN], tasks[ids.REGISTER], tasks[ids.PROMOTE]
    assert train["inputs"] == {manifest}, train
    assert len(train["outputs"]) == len(QUICK_CONF["grid"]), train
    store = f"sqlite:///{smoke_run.state / 'mlflow' / 'mlflow.db'}"
    assert {ns for ns, _ in train["outputs"]} == {store}, train
    assert manifest in register["inputs"], register
    assert register["inputs"] - {manifest} <= train["outputs"], register  # the chosen run
    from mlflow import MlflowClient

    champion = MlflowClient(tracking_uri=store, registry_uri=store).get_model_version_by_alias(
        REGISTERED_MODEL_NAME, CHAMPION_ALIAS
    )
    version = (store, f"models:/{REGISTERED_MODEL_NAME}/{champion.version}")
    assert register["outputs"] == {version}, register
    # model version -> champion alias (the quick conf's first candidate is promoted).
    assert promote["inputs"] == {version}, promote
    assert promote["outputs"] == {(store, f"models:/{REGISTERED_MODEL_NAME}@{CHAMPION_ALIAS}")}, promote
