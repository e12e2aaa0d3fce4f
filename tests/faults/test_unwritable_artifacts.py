"""The artifact folder unwritable: ``ingest`` fails with a clear error naming the folder, and no
downstream task runs."""

from __future__ import annotations

import json
import time

import pytest

from tests.faults.fault_stack import FaultStack, report
from tests.stack.airflow_api import DAG_ID

pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.integration]

# prepare_grid has no upstream task (it only creates the MLflow experiment): it may run.
# Not downstream of ingest: prepare_grid, and monitor_champion (it writes to MLflow only).
INDEPENDENT = {"ingest", "prepare_grid", "monitor_champion"}


def test_unwritable_artifact_folder_fails_ingest_only(fault_stack: FaultStack) -> None:
    faults = fault_stack
    versions_before = sorted(v.version for v in faults.versions())
    # The DAG's folder under the artifact root: no new run folder can be made in it.
    folder = faults.artifact_root / DAG_ID
    faults.make_unwritable(folder)
    try:
        started = time.monotonic()
        run_id = faults.trigger("unwritable")
        finished = faults.api.wait_for_run(run_id, timeout=600)
        failed_s = time.monotonic() - started
    finally:
        faults.make_writable(folder)

    assert finished.state == "failed"
    states = finished.states()
    assert states[("ingest", -1)] == "failed"
    downstream = [ti for ti in finished.task_instances if ti["task_id"] not in INDEPENDENT]
    assert {ti["task_id"] for ti in downstream} >= {"preprocess", "tokenize", "register"}
    for ti in downstream:
        assert ti["state"] == "upstream_failed", ti
        # Marked, never run: no worker host or process (Airflow stamps start_date when marking).
        assert not ti["hostname"], ti
        assert ti["pid"] is None, ti
    tries = faults.tries(run_id, "ingest")
    log = json.dumps(
        faults.api.get(
            f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/ingest/logs/{tries[-1]['try_number']}",
            full_content=True,
        )
    )
    assert "Operation not permitted" in log or "Permission denied" in log, log[-3000:]
    assert str(folder / run_id) in log
    assert faults.mlflow_runs(run_id) == []
    assert sorted(v.version for v in faults.versions()) == versions_before
    report(
        faults.config,
        f"faults: artifact folder unwritable: ingest failed after {len(tries)} tries, run failed "
        f"{failed_s:.0f} s after the trigger; downstream tasks started: 0 of {len(downstream)}; "
        "versions created 0",
    )
