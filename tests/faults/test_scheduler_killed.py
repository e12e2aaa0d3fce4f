"""The scheduler SIGKILLed while ``train`` runs: the stack starts it again by itself (compose's
restart policy under supervisord) within 30 s, with nothing of the killed one left alive (as a
container's processes die with it), and the run completes with at most one version (exactly one,
since it succeeds): the new scheduler resets the train tries that died and runs them again."""

from __future__ import annotations

import time

import pytest

from tests.faults.fault_stack import FaultStack, report

pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.integration]

CONF = {"max_epochs": 15, "patience": 15}
BACK_WITHIN_S = 30


def test_scheduler_sigkilled_during_train(fault_stack: FaultStack) -> None:
    faults = fault_stack
    faults.clear_champion()
    run_id = faults.trigger("scheduler_sigkill", CONF)
    faults.wait_for_training(run_id)
    killed_pid = faults.kill_scheduler()
    killed_at = time.monotonic()
    back_s = faults.wait_back("airflow-scheduler", killed_pid)
    finished = faults.api.wait_for_run(run_id, timeout=900)
    done_s = time.monotonic() - killed_at
    assert back_s < BACK_WITHIN_S, f"the scheduler took {back_s:.0f} s to come back"
    assert finished.state == "success", finished.states()
    assert not faults.alive(killed_pid)
    # Its LocalExecutor workers held its database connections (and a transaction's row locks on
    # the run): they must be gone, or the new scheduler skips the locked run forever.
    killed = next(s for s in faults.sessions("airflow-scheduler") if s.pid == killed_pid)
    assert killed.members() == [], f"processes of the killed scheduler still run: {killed.members()}"
    tries = {f"{t}[{i}]" if i >= 0 else t: len(faults.tries(run_id, t, i)) for t, i in finished.states()}
    outcome = faults.check_outcome(run_id)
    report(
        faults.config,
        f"faults: scheduler SIGKILLed mid-train: back and healthy by itself in {back_s:.1f} s, run done "
        f"{done_s:.0f} s after the kill; tries {tries}; {outcome}",
    )
