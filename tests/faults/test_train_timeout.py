"""``execution_timeout`` hit in ``train``: the task process is gone within seconds, its MLflow
run is closed, and the registry is untouched.

The fault stack's cluster policy gives ``train`` a TRAIN_TIMEOUT_S timeout (the DAG's own is
60 minutes); this run's conf trains far longer than that.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from tests.faults.conftest import TRAIN_TIMEOUT_S
from tests.faults.fault_stack import FaultStack, report, wait_until
from tests.stack.airflow_api import parse_time

pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.integration]

# Tiny batches and up to 500 epochs: minutes of training, stopped early by nothing but the timeout.
CONF = {
    "max_epochs": 500,
    "patience": 50,
    "grid": [{"name": "slow", "embedding_dim": 16, "batch_size": 4, "learning_rate": 0.0005}],
}


def test_train_execution_timeout(fault_stack: FaultStack) -> None:
    faults = fault_stack
    versions_before = sorted(v.version for v in faults.versions())
    champion = faults.champion()
    champion_before = champion.version if champion else None
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
        TRAIN_TIMEOUT_S + 120,
        "train[0] to time out",
    )
    failed_at = time.monotonic()
    faults.fail_run(run_id)  # before the retry starts: one timed-out try is the case under test
    wait_until(lambda: not faults.alive(pid), 60, f"task process {pid} to exit", interval=0.1)
    gone_s = time.monotonic() - failed_at
    lifetime_s = (datetime.now(UTC) - started).total_seconds()
    assert gone_s < 10, gone_s
    assert TRAIN_TIMEOUT_S <= lifetime_s < TRAIN_TIMEOUT_S + 60, lifetime_s

    finished = faults.api.wait_for_run(run_id, timeout=120)
    assert finished.state == "failed"
    tries = faults.tries(run_id, "train", 0)
    assert len(tries) == 1, tries
    runs = faults.train_runs(run_id)
    assert [r.info.status for r in runs] == ["FAILED"], [r.info.status for r in runs]
    # The timeout hit during training: the run logged epochs, and no model.
    assert faults.epochs_logged(runs[0].info.run_id) >= 1
    assert "model_id" not in runs[0].data.tags
    assert faults.versions(run_id) == []
    assert sorted(v.version for v in faults.versions()) == versions_before
    champion = faults.champion()
    assert (champion.version if champion else None) == champion_before
    assert faults.state_of(run_id, "register") != "success"
    report(
        faults.config,
        f"faults: train execution_timeout ({TRAIN_TIMEOUT_S} s): task process gone {gone_s:.1f} s after "
        f"the try failed, {lifetime_s:.0f} s after the try started; epochs logged "
        f"{faults.epochs_logged(runs[0].info.run_id)}; MLflow run FAILED; versions created 0",
    )
