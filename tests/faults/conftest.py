"""Fixtures of the fault-injection tests: ``python -m scripts.local_stack up`` (PostgreSQL, MLflow server,
Airflow api-server, scheduler with LocalExecutor, dag-processor, triggerer) in a temporary state
folder, with a test-only Airflow cluster policy that shortens waits, and ``down`` at the end.

The cluster policy (``$AIRFLOW_HOME/config/airflow_local_settings.py``, Airflow's own hook for
deployment-wide task settings) changes no DAG file. It sets, for this stack only:

* the ``retry_delay`` of every task but ``register`` to RETRY_DELAY_S (the DAG says 60 s: the
  faults would wait minutes for retries alone). ``register`` keeps the DAG's 60 s: the MLflow
  outage test restarts the server after register's first failed try, and a restart on a loaded
  machine took 40 s, longer than three short delays;
* ``train``'s ``execution_timeout`` to the seconds in ``$AIRFLOW_HOME/config/train_timeout``
  while that file exists (the DAG says 60 min). Each task process parses the DAG file when it
  starts, so only the tries that start while test_train_timeout.py holds the file get it; the
  other tests' training runs, slow on a loaded machine, keep the DAG's own timeout;
* the MLflow client's HTTP retries to a few seconds (its default rides out a four-minute
  outage), so that a lost MLflow server fails a try within the test's time.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.fault_stack import ARTIFACTS, TRAIN_TIMEOUT_FILE, FaultStack, report
from tests.support.local_stack import stack_session

RETRY_DELAY_S = 10

LOCAL_SETTINGS = f'''"""Test-only cluster policy of the fault stack (written by tests/faults/conftest.py)."""

import os
from datetime import timedelta
from pathlib import Path

# Inherited by the task processes, which the scheduler forks (LocalExecutor).
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")


def task_policy(task):
    if task.dag_id != "sentiment_retrain":
        return
    if task.task_id != "register":
        task.retry_delay = timedelta(seconds={RETRY_DELAY_S})
    timeout = Path(__file__).with_name("{TRAIN_TIMEOUT_FILE}")
    if task.task_id == "train" and timeout.is_file():
        task.execution_timeout = timedelta(seconds=float(timeout.read_text()))
'''


@pytest.fixture(scope="session")
def fault_stack(real_reviews_path: Path, pytestconfig: pytest.Config) -> Iterator[FaultStack]:
    """The local stack with the test-only policy; stopped by ``python -m scripts.local_stack down``
    afterwards."""
    policy = {"airflow_local_settings.py": LOCAL_SETTINGS}
    with stack_session(real_reviews_path, ARTIFACTS, "sentiment-faults-", policy) as session:
        faults = FaultStack(session.stack, session.api, session.secrets, pytestconfig)
        try:
            yield faults
        finally:
            # Before ``down``: restore permissions and stop what the faults left behind.
            faults.cleanup()


@pytest.fixture(scope="session")
def baseline_run(fault_stack: FaultStack) -> str:
    """A quick run with no fault: the registry's first champion, and the runs the race test reuses."""
    # A 30% sample: about 600 test reviews, enough for the gate to compare two models (the race
    # test registers both of this run's grid points against each other).
    run_id = fault_stack.trigger("baseline", {"sample_fraction": 0.3})
    finished = fault_stack.api.wait_for_run(run_id, timeout=600)
    assert finished.state == "success", finished.states()
    report(fault_stack.config, f"faults: baseline quick run: {finished.timings()}")
    return run_id
