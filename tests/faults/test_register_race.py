"""Two register steps at once on one registered model, 20 times: version numbers stay unique and
``champion`` ends where the gate's rule puts it (on the better candidate, or on the other one only
where the non-inferiority rule says so, recorded on the versions), not on the last writer.

Two long-lived processes call ``review_sentiment.register.register`` on the stack's MLflow server
(PostgreSQL store), each with one of the baseline run's two trained grid points, on the same cue;
the promotion lock is the PostgreSQL advisory lock on the stack's database.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.faults.fault_stack import ARTIFACTS, FaultStack, report
from tests.stack.airflow_api import DAG_ID

pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.integration]

ROUNDS = 20
WORKER = Path(__file__).with_name("register_worker.py")


def _line(process: subprocess.Popen, timeout: float) -> str:
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    assert ready, f"worker {process.pid} said nothing within {timeout:.0f}s"
    line = process.stdout.readline()
    assert line, f"worker {process.pid} exited (its log: test-artifacts/faults/register-worker-*.log)"
    return line.strip()


def test_concurrent_registers_promote_the_better_model(fault_stack: FaultStack, baseline_run: str) -> None:
    faults = fault_stack
    # Every try of a point leaves a run: a retried one (a failed first try) leaves a FAILED one too.
    finished = [r for r in faults.train_runs(baseline_run) if r.info.status == "FINISHED"]
    runs = {r.data.tags["airflow.map_index"]: r.info.run_id for r in finished}
    assert sorted(runs) == ["0", "1"], runs
    manifest = faults.run_dir(baseline_run) / "tokenize" / "manifest.json"
    assert manifest.is_file()
    stack = faults.stack
    env = {
        **os.environ,
        "SENTIMENT_LOCK_URI": f"postgresql://mlflow@127.0.0.1:{stack.ports['postgres:5432']}/mlflow",
        "PGPASSWORD": faults.secrets["MLFLOW_DB_PASSWORD"],
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    # stderr to files: MLflow's download progress bars would fill an unread pipe and block a worker.
    logs = [open(ARTIFACTS / f"register-worker-{index}.log", "w") for index in ("0", "1")]  # noqa: SIM115
    workers = [
        subprocess.Popen(
            [sys.executable, str(WORKER), stack.mlflow_url, str(manifest), runs[index]],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
        for index, log in zip(("0", "1"), logs, strict=True)
    ]
    client = faults.mlflow()
    superseded = refused = by_rule = 0
    try:
        for worker in workers:
            assert _line(worker, 300) == "ready"
        started = time.monotonic()
        for round_ in range(ROUNDS):
            model = f"race-{baseline_run[-15:]}-{round_:02d}"
            # Alternate who gets the cue first, so either side may win the race to the lock.
            for side, worker in sorted(enumerate(workers), key=lambda w: (w[0] + round_) % 2):
                worker.stdin.write(f"{model} {DAG_ID}/race-{round_}-{side}\n")
                worker.stdin.flush()
            results = [json.loads(_line(worker, 300)) for worker in workers]
            errors = [r["error"] for r in results if "error" in r]
            assert not errors, errors

            versions = client.search_model_versions(f"name = '{model}'")
            numbers = [int(v.version) for v in versions]
            assert sorted(numbers) == [1, 2], numbers  # unique, none lost
            # Named under the lock and only forward: the newer version, whichever run finished last.
            assert client.get_model_version_by_alias(model, "challenger").version == "2", round_
            score = {v.version: float(v.tags["candidate.test_roc_auc"]) for v in versions}
            champion = client.get_model_version_by_alias(model, "champion")
            if score[champion.version] < max(score.values()):
                # Only by the rule: the worse one passed non-inferiority against the better one, or
                # the better one was not shown non-inferior to it (gate.py; both recorded).
                (other,) = [v for v in versions if v.version != champion.version]
                passed = " ".join(champion.tags.get(k, "") for k in ("gate.reason", "outcome.reason"))
                not_shown = other.tags.get(
                    "outcome"
                ) == "kept" and "not shown non-inferior" in other.tags.get("outcome.reason", "")
                assert "non-inferior (lower bound above" in passed or not_shown, (round_, score, results)
                by_rule += 1
            promoted = [r for r in results if r["promoted"]]
            superseded += len(promoted) == 2
            refused += len(promoted) == 1
        elapsed = time.monotonic() - started
    finally:
        for worker in workers:
            worker.stdin.close()
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                worker.kill()
        for log in logs:
            log.close()
    report(
        faults.config,
        f"faults: register race x{ROUNDS} on one model per round ({elapsed:.0f} s): versions unique "
        f"in every round, champion on the better candidate in {ROUNDS - by_rule}/{ROUNDS} (elsewhere by "
        f"the non-inferiority rule); the loser was refused "
        f"in {refused} rounds, promoted first then superseded in {superseded}",
    )
