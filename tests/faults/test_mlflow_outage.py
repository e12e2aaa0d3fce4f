"""The MLflow server SIGKILLed while ``train`` runs (the stack starts it again by itself); then
stopped just before ``register`` (as ``docker compose stop``) and started after register's first
failed try. The run still ends with exactly one version, gated as usual, and no MLflow run left
RUNNING."""

from __future__ import annotations

import time

import pytest

from tests.faults.fault_stack import FaultStack, report

pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.integration]

# Long enough for the kill to land mid-training; the real gate, not a forced promotion.
CONF = {"max_epochs": 15, "patience": 15, "force_promote": False}


def test_mlflow_lost_during_train_and_before_register(fault_stack: FaultStack) -> None:
    faults = fault_stack
    faults.clear_champion()
    run_id = faults.trigger("mlflow_outage", CONF)
    orphaned = faults.wait_for_training(run_id)
    killed_pid = faults.kill_mlflow()
    killed_at = time.monotonic()
    # An outage, not a blip: the server takes seconds to start, so the train tasks' next calls fail.
    train_restart_s = faults.wait_back("mlflow", killed_pid)

    def trained():
        states = faults.task_instances(run_id)
        return all(states[("train", i)]["state"] == "success" for i in (0, 1))

    faults.wait_in_run(run_id, trained, 600, "both train tasks to succeed", interval=0.2)
    faults.stop("mlflow")
    stopped_at = time.monotonic()
    faults.wait_in_run(
        run_id,
        lambda: faults.state_of(run_id, "register") in {"up_for_retry", "failed"},
        300,
        "register's first try to fail",
    )
    register_failed_s = time.monotonic() - stopped_at
    register_restart_s = faults.start("mlflow")
    restarted_at = time.monotonic()
    finished = faults.api.wait_for_run(run_id, timeout=600)
    recovered_s = time.monotonic() - restarted_at

    register_tries = faults.tries(run_id, "register")
    assert len(register_tries) >= 2
    assert register_tries[0]["state"] != "success"
    train_tries = [len(faults.tries(run_id, "train", i)) for i in (0, 1)]
    client = faults.mlflow()
    # The runs the kill interrupted were closed by the retry, not left RUNNING.
    assert {client.get_run(r).info.status for r in orphaned} <= {"FAILED", "KILLED", "FINISHED"}
    outcome = faults.check_outcome(run_id)
    # The gate decided once, and the branch says what it decided; either way the run succeeds.
    assert finished.state == "success", finished.states()
    assert register_tries[-1]["state"] == "success"
    taken = "promote" if outcome["decision"] == "promoted" else "keep_champion"
    skipped = "keep_champion" if taken == "promote" else "promote"
    assert faults.state_of(run_id, taken) == "success"
    assert faults.state_of(run_id, skipped) == "skipped"
    if outcome["decision"] == "kept":
        assert faults.champion() is None
    report(
        faults.config,
        f"faults: MLflow SIGKILLed mid-train (back by itself in {train_restart_s:.0f} s, "
        f"{time.monotonic() - killed_at:.0f} s to the end), train tries {train_tries}; MLflow stopped "
        f"before register: first try failed after {register_failed_s:.0f} s, restart took "
        f"{register_restart_s:.0f} s, run done {recovered_s:.0f} s after the restart; register tries "
        f"{[t['state'] for t in register_tries]}; {outcome}",
    )
