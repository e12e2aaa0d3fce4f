"""The README's embedded path, run as ``make smoke`` runs it: scripts/run_local.sh with the quick-run
conf (Airflow on SQLite, MLflow's SQLite store and local artifacts, the real review file,
``airflow dags test``), in a temporary state folder instead of the user's .local.

It asserts a green DAG run and a registered model version holding the ``champion`` alias: the
quick conf's floor (0.5) lets a first candidate through, so a missing champion is a broken path.
"""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from review_sentiment.config import CHAMPION_ALIAS, PROJECT_ROOT, REGISTERED_MODEL_NAME, RETRAIN_DAG_ID
from tests.support import measure
from tests.support.quick_run import QUICK_CONF_PATH

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


@pytest.mark.slow
def test_make_smoke_registers_a_champion(
    tmp_path: Path, real_reviews_path: Path, pytestconfig: pytest.Config
) -> None:
    state = tmp_path / "local"
    env = {k: v for k, v in os.environ.items() if k not in STATE_VARIABLES}
    env.update(SENTIMENT_LOCAL_STATE=str(state), REVIEWS_PATH=str(real_reviews_path), PY=sys.executable)
    started = time.monotonic()
    done = subprocess.run(
        [str(RUN_LOCAL), "-c", QUICK_CONF_PATH.read_text()], env=env, cwd=PROJECT_ROOT,
        capture_output=True, text=True, timeout=1500, check=False,
    )  # fmt: skip
    seconds = time.monotonic() - started
    output = f"{done.stdout[-4000:]}\n{done.stderr[-6000:]}"
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
