"""Clearing a finished ``register`` re-runs it through the scheduler: it finds the version it made
for the run, creates none, and moves no alias. (tests/integration/test_dag_on_servers.py checks
the same with ``airflow tasks test``; this goes through the REST API and the running stack.)"""

from __future__ import annotations

import time

import pytest

from review_sentiment.config import REGISTERED_MODEL_NAME
from tests.faults.fault_stack import FaultStack, report, wait_until
from tests.stack.airflow_api import DAG_ID

pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.integration]


def test_clearing_a_finished_register_changes_nothing(fault_stack: FaultStack, baseline_run: str) -> None:
    faults = fault_stack
    versions_before = sorted(v.version for v in faults.versions())
    [run_version] = faults.versions(baseline_run)
    champion_before = faults.champion()
    challenger_before = faults.mlflow().get_model_version_by_alias(REGISTERED_MODEL_NAME, "challenger")
    try_before = faults.task_instance(baseline_run, "register")["try_number"]

    started = time.monotonic()
    faults.api.request(
        "POST",
        f"/dags/{DAG_ID}/clearTaskInstances",
        json={
            "dag_run_id": baseline_run,
            "task_ids": ["register"],
            "only_failed": False,
            "reset_dag_runs": True,
            "dry_run": False,
        },
    )

    def rerun_finished():
        ti = faults.task_instance(baseline_run, "register")
        return ti["try_number"] > try_before and ti["state"] in {"success", "failed"} and ti

    ti = wait_until(rerun_finished, 300, "the cleared register to run again")
    rerun_s = time.monotonic() - started
    assert ti["state"] == "success"
    assert faults.api.wait_for_run(baseline_run, timeout=120).state == "success"
    xcom = faults.api.get(
        f"/dags/{DAG_ID}/dagRuns/{baseline_run}/taskInstances/register/xcomEntries/return_value"
    )["value"]
    assert "'reused': True" in str(xcom) or '"reused": true' in str(xcom), xcom
    assert sorted(v.version for v in faults.versions()) == versions_before
    assert [v.version for v in faults.versions(baseline_run)] == [run_version.version]
    champion = faults.champion()
    assert (champion and champion.version) == (champion_before and champion_before.version)
    challenger = faults.mlflow().get_model_version_by_alias(REGISTERED_MODEL_NAME, "challenger")
    assert challenger.version == challenger_before.version
    report(
        faults.config,
        f"faults: cleared a finished register: re-ran in {rerun_s:.0f} s (try {ti['try_number']}), "
        f"reused version {run_version.version}; versions created 0; champion unchanged "
        f"({champion and champion.version})",
    )
