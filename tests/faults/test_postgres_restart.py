"""PostgreSQL (Airflow's metadata and MLflow's store) restarted while ``train`` runs: the run
completes, with one version.

Airflow's scheduler, dag-processor and triggerer exit when their database goes away (``connection
refused``, or ``the database system is shutting down``); compose's ``restart: unless-stopped``,
which ``make stack`` keeps under supervisord, starts them again. PostgreSQL stays down until one of
them has exited, so that this happens every time; the test restarts nothing but PostgreSQL and
observes that each component came back healthy by itself.
"""

from __future__ import annotations

import collections
import time

import pytest

from tests.faults.fault_stack import FaultStack, report, wait_until

pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.integration]

# Long enough that train is still running when PostgreSQL is back (the outage lasts a few seconds
# from the first epoch): with the quick conf's 20% sample, 15 epochs ended 6 s after the restart
# once, while the scheduler was reconnecting, and that scheduler hung (docs/RELIABILITY.md); this
# test is about an outage during train.
CONF = {"max_epochs": 40, "patience": 40}
AIRFLOW = ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer")
LONG_RUNNING = ("postgres", "mlflow", *AIRFLOW)


def test_postgres_restarted_during_train(fault_stack: FaultStack) -> None:
    faults = fault_stack
    faults.clear_champion()
    run_id = faults.trigger("postgres_restart", CONF)
    faults.wait_for_training(run_id)
    before = len(faults.sessions())
    pids = {name: faults.pid(name) for name in AIRFLOW}
    stopped_at = time.monotonic()
    faults.stop("postgres")
    exited = wait_until(
        lambda: [n for n in AIRFLOW if faults.pid(n) != pids[n]], 120, "an Airflow component to exit"
    )
    faults.start("postgres", timeout=120)
    down_s = time.monotonic() - stopped_at
    restarted_at = time.monotonic()
    finished = faults.wait_for_run_tolerant(run_id, timeout=600)
    done_s = time.monotonic() - restarted_at
    restarted = collections.Counter(s.name for s in faults.sessions()[before:] if s.name != "postgres")
    assert finished.state == "success", finished.states()
    for name in LONG_RUNNING:  # every component runs and is healthy again, restarted or not
        wait_until(lambda name=name: faults.pid(name) and faults.stack.healthy(name), 180, f"{name} healthy")
    tries = {f"{t}[{i}]" if i >= 0 else t: len(faults.tries(run_id, t, i)) for t, i in finished.states()}
    outcome = faults.check_outcome(run_id)
    report(
        faults.config,
        f"faults: PostgreSQL restarted mid-train (down {down_s:.1f} s, until {exited} exited): starts by the "
        f"restart policy {dict(restarted)}; run done {done_s:.0f} s after; tries {tries}; {outcome}",
    )
