"""The train task SIGKILLed mid-epoch, as the OOM killer would: the retry succeeds, the killed
MLflow run ends FAILED rather than RUNNING, the run registers exactly one version and no
interrupted write is left at a final path."""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.faults.fault_stack import FaultStack, report, wait_until

pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.integration]

# About 15 short epochs on the 20% sample: long enough to be caught between two epochs.
CONF = {"max_epochs": 15, "patience": 15}


def test_train_sigkilled_mid_epoch_is_retried_cleanly(fault_stack: FaultStack) -> None:
    faults = fault_stack
    faults.clear_champion()
    run_id = faults.trigger("train_sigkill", CONF)

    def training_point_0():
        ti = faults.task_instance(run_id, "train", 0)
        if not ti or ti["state"] != "running":
            return None
        for run in faults.train_runs(run_id):
            tags = run.data.tags
            if tags.get("airflow.map_index") == "0" and run.info.status == "RUNNING":
                epochs = faults.epochs_logged(run.info.run_id)
                if epochs >= 1:
                    return ti, run.info.run_id, epochs
        return None

    ti, killed_run, epochs = faults.wait_in_run(
        run_id, training_point_0, 420, "train[0] to log its first epoch"
    )
    pid = faults.task_process(ti["id"])
    assert pid is not None, f"no process titled for task instance {ti['id']}"
    os.kill(pid, signal.SIGKILL)
    killed_at = time.monotonic()
    wait_until(lambda: not faults.alive(pid), 10, f"task process {pid} to die")

    faults.wait_in_run(
        run_id, lambda: faults.state_of(run_id, "train", 0) == "success", 420, "train[0] to succeed"
    )
    retried_s = time.monotonic() - killed_at
    finished = faults.api.wait_for_run(run_id, timeout=420)
    done_s = time.monotonic() - killed_at
    assert finished.state == "success", finished.states()

    tries = faults.tries(run_id, "train", 0)
    assert len(tries) >= 2, tries
    assert tries[0]["state"] != "success"
    assert tries[-1]["state"] == "success"
    assert faults.mlflow().get_run(killed_run).info.status in {"FAILED", "KILLED"}
    assert faults.epochs_logged(killed_run) < CONF["max_epochs"]
    outcome = faults.check_outcome(run_id)
    report(
        faults.config,
        f"faults: train SIGKILLed after epoch {epochs}: train[0] succeeded {retried_s:.0f} s after the "
        f"kill, run done after {done_s:.0f} s; tries {[t['state'] for t in tries]}; killed MLflow run "
        f"{faults.mlflow().get_run(killed_run).info.status}; {outcome}",
    )
