"""``execution_timeout`` hit in ``train``: the task process is gone within seconds, its MLflow
run is closed, and the registry is untouched.

The DAG gives ``train`` 60 minutes; the fault stack's cluster policy lets this test give the
tries it starts TIMEOUT_S instead (see tests/faults/conftest.py), and the run conf trains for
far longer than that.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from tests.faults.fault_stack import FaultStack, report, wait_until
from tests.stack.airflow_api import parse_time

pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.integration]

TIMEOUT_S = 60
# Tiny batches on all the reviews, up to 500 epochs: early stopping (patience 50) cannot end
# training before epoch 51, minutes at about 3 s an epoch, so only the timeout stops it. (On the
# quick run's 20% sample, training finished in 43 s once Keras ran 32 steps per graph call.)
CONF = {
    "sample_fraction": 1.0,
    "max_epochs": 500,
    "patience": 50,
    "grid": [{"name": "slow", "embedding_dim": 16, "batch_size": 4, "learning_rate": 0.0005}],
}


def test_train_execution_timeout(fault_stack: FaultStack) -> None:
    faults = fault_stack
    versions_before = sorted(v.version for v in faults.versions())
    champion = faults.champion()
    champion_before = champion.version if champion else None
    faults.set_train_timeout(TIMEOUT_S)
    try:
        run_id = faults.trigger("train_timeout", CONF)

        def task_running():
            ti = faults.task_instance(run_id, "train", 0)
            if ti and ti["state"] == "running":
                pid = faults.task_process(ti["id"])
                return (ti, pid) if pid else None
            return None

        ti, pid = faults.wait_in_run(run_id, task_running, 420, "train[0]'s task process")
        started = parse_time(ti["start_date"])
        faults.wait_in_run(
            run_id,
            lambda: faults.state_of(run_id, "train", 0) != "running",
            TIMEOUT_S + 180,
            "train[0] to time out",
        )
        failed_at = time.monotonic()
        faults.fail_run(run_id)  # before the retry starts: one timed-out try is the case under test
    finally:
        faults.set_train_timeout(None)
    wait_until(lambda: not faults.alive(pid), 60, f"task process {pid} to exit", interval=0.1)
    gone_s = time.monotonic() - failed_at
    lifetime_s = (datetime.now(UTC) - started).total_seconds()
    assert gone_s < 10, gone_s
    # The timeout counts from the task's execute(), after the task process parsed the DAG.
    assert TIMEOUT_S <= lifetime_s < TIMEOUT_S + 120, lifetime_s

    finished = faults.api.wait_for_run(run_id, timeout=120)
    assert finished.state == "failed"
    # The run was failed before the retry started: one try ran. (The task instance's own row,
    # already at try 2, keeps the start of try 1: count distinct starts.)
    tries = faults.tries(run_id, "train", 0)
    starts = {t["start_date"] for t in tries if t["start_date"]}
    assert len(starts) == 1, [(t["try_number"], t["state"], t["start_date"]) for t in tries]

    def timeout_logged() -> bool:
        log = str(
            faults.api.get(
                f"/dags/sentiment_retrain/dagRuns/{run_id}/taskInstances/train/logs/1",
                map_index=0,
                full_content=True,
            )
        )
        return "AirflowTaskTimeout" in log

    # The log served right after the run fails can still lack the last lines of the killed
    # try (seen in CI): poll it, with a bound, instead of reading it once.
    wait_until(timeout_logged, 60, "AirflowTaskTimeout in train[0]'s try-1 log", interval=2)
    runs = faults.train_runs(run_id)
    assert [r.info.status for r in runs] == ["FAILED"], [r.info.status for r in runs]
    assert "model_id" not in runs[0].data.tags  # stopped before a model was logged
    assert faults.versions(run_id) == []
    assert sorted(v.version for v in faults.versions()) == versions_before
    champion = faults.champion()
    assert (champion.version if champion else None) == champion_before
    assert faults.state_of(run_id, "register") != "success"
    report(
        faults.config,
        f"faults: train execution_timeout ({TIMEOUT_S} s): task process gone {gone_s:.1f} s after "
        f"the try failed, {lifetime_s:.0f} s after the try started; epochs logged "
        f"{faults.epochs_logged(runs[0].info.run_id)}; MLflow run FAILED; versions created 0",
    )
