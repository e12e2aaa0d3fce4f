"""PostgreSQL (Airflow's metadata and MLflow's store) restarted while ``train`` runs: the run
completes, with one version.

Airflow's scheduler, dag-processor and triggerer exit when their database goes away (seen here:
``OperationalError: the database system is shutting down``); compose restarts them
(``restart: unless-stopped``), so the test does the same for any component that exits.
"""

from __future__ import annotations

import time

import pytest

from tests.faults.fault_stack import FaultStack, report

pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.integration]

CONF = {"max_epochs": 15, "patience": 15}


def test_postgres_restarted_during_train(fault_stack: FaultStack) -> None:
    faults = fault_stack
    faults.clear_champion()
    run_id = faults.trigger("postgres_restart", CONF)

    def an_epoch_logged():
        running = [r for r in faults.train_runs(run_id) if r.info.status == "RUNNING"]
        return any(faults.epochs_logged(r.info.run_id) >= 1 for r in running)

    faults.wait_in_run(run_id, an_epoch_logged, 420, "a train task to log its first epoch")
    down_s = faults.restart_postgres()
    restarted_at = time.monotonic()
    finished, restarted = faults.wait_for_run_restarting(run_id, timeout=600)
    done_s = time.monotonic() - restarted_at
    assert finished.state == "success", finished.states()
    tries = {f"{t}[{i}]" if i >= 0 else t: len(faults.tries(run_id, t, i)) for t, i in finished.states()}
    outcome = faults.check_outcome(run_id)
    report(
        faults.config,
        f"faults: PostgreSQL restarted mid-train (down {down_s:.1f} s): components that exited and were "
        f"restarted {restarted}; run done {done_s:.0f} s after; tries {tries}; {outcome}",
    )
