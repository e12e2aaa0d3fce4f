"""Session fixtures of the stack tests: ``scripts/stack.py up`` on free loopback ports, in a
temporary state folder with its own .env, and ``scripts/stack.py down`` at the end (by pid).

Only tests that request ``running_stack`` start it; the static compose tests beside them do not.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from scripts.stack import AIRFLOW_ENV_FILE, Stack, read_env_file
from tests.stack.airflow_api import AirflowApi, FinishedRun
from tests.support.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "stack.py"
ARTIFACTS = ROOT / "test-artifacts" / "stack"
MODEL_NAME = "customer-sentiment-analysis"
# The quick run of the REST test (and the base of the others): a 20% sample, two small points.
QUICK_CONF: dict[str, Any] = {
    "sample_fraction": 0.2,
    "max_epochs": 3,
    "promotion_floor": 0.5,
    "beat_baseline": False,  # plumbing runs: tiny models, not a quality bar
    "grid": [
        {"name": "a", "embedding_dim": 16, "batch_size": 64, "learning_rate": 0.01},
        {"name": "b", "embedding_dim": 32, "batch_size": 128, "learning_rate": 0.01},
    ],
}


@dataclass
class RunningStack:
    """The stack under test, its admin API client, and what happened when it started."""

    stack: Stack
    api: AirflowApi
    secrets: dict[str, str]
    started_at: datetime
    scheduled_at_start: list[dict[str, Any]]
    timings: dict[str, float] = field(default_factory=dict)


def report(config: pytest.Config, line: str) -> None:
    """Write a line to the terminal, past output capture (measured figures belong in the CI log)."""
    terminal = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if terminal is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            terminal.write_line(line)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with open(ARTIFACTS / "measurements.txt", "a") as out:
        out.write(f"{datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ} {line}\n")


def _scheduled_runs_at_start(api: AirflowApi, timeout: float = 180) -> list[dict[str, Any]]:
    """The scheduled runs once the scheduler has planned the DAG's first run.

    The DAG has no start_date and run_immediately=0, so a new deployment must wait for the next
    Monday slot rather than start a full retrain at once.
    """
    deadline = time.monotonic() + timeout
    while not api.dag().get("next_dagrun_run_after"):
        assert time.monotonic() < deadline, f"the scheduler planned no run within {timeout:.0f}s"
        time.sleep(1)
    time.sleep(5)  # a few scheduler loops: a due run would have been created by now
    return api.runs(run_type="scheduled")


@pytest.fixture(scope="session")
def running_stack(real_reviews_path: Path, pytestconfig: pytest.Config) -> Iterator[RunningStack]:
    """``make stack``'s script on free ports; stopped by ``scripts/stack.py down`` afterwards."""
    # Not under pytest's tmp folder: it is private to root, and PostgreSQL runs as its own user.
    root = Path(tempfile.mkdtemp(prefix="sentiment-stack-"))
    root.chmod(0o755)
    # The review file under the name deploy/airflow.env gives it (REVIEWS_PATH's file name): a
    # copy in this throwaway folder, as a bind mount would show it; a symlink out of the data
    # folder is refused by the DAG's source check.
    data_dir = root / "data"
    data_dir.mkdir()
    reviews_name = Path(read_env_file(AIRFLOW_ENV_FILE)[0]["REVIEWS_PATH"]).name
    shutil.copyfile(real_reviews_path, data_dir / reviews_name)
    env = {
        **os.environ,
        "STACK_DIR": str(root / "state"),
        "STACK_ENV_FILE": str(root / ".env"),
        "STACK_AIRFLOW_PORT": str(free_port()),
        "STACK_MLFLOW_PORT": str(free_port()),
        "SENTIMENT_DATA_DIR": str(data_dir),
    }
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    started = datetime.now(UTC)
    t0 = time.monotonic()
    up = subprocess.run(
        [sys.executable, str(SCRIPT), "up"], env=env, capture_output=True, text=True, timeout=900, cwd=ROOT
    )
    (ARTIFACTS / "stack-up.log").write_text(up.stdout + up.stderr)
    stack = Stack.load(root / "state", root / ".env")
    try:
        assert up.returncode == 0, f"scripts/stack.py up failed:\n{up.stdout[-3000:]}\n{up.stderr[-5000:]}"
        report(pytestconfig, f"stack: scripts/stack.py up took {time.monotonic() - t0:.0f} s")
        secrets = stack.secrets()
        api = AirflowApi(
            stack.airflow_url, secrets["AIRFLOW_ADMIN_USERNAME"], secrets["AIRFLOW_ADMIN_PASSWORD"]
        )
        scheduled = _scheduled_runs_at_start(api)
        yield RunningStack(stack, api, secrets, started, scheduled)
    finally:
        down = subprocess.run(
            [sys.executable, str(SCRIPT), "down"],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            cwd=ROOT,
        )
        left = [name for name, proc in stack.procs.items() if proc.alive()]
        if stack.logs.is_dir():
            shutil.copytree(stack.logs, ARTIFACTS / "logs", dirs_exist_ok=True)
        (ARTIFACTS / "stack-state.json").write_text(
            json.dumps(
                {"ports": stack.ports, "processes": {k: vars(p) for k, p in stack.procs.items()}}, indent=2
            )
        )
        shutil.rmtree(root, ignore_errors=True)
        assert down.returncode == 0, down.stdout + down.stderr
        assert not left, f"still running after scripts/stack.py down: {left}"


@pytest.fixture(scope="session")
def rest_run(running_stack: RunningStack, pytestconfig: pytest.Config) -> FinishedRun:
    """The quick run, triggered through the REST API: the first run of the session to finish.

    The other tests that run the DAG request it first: its register step then meets an empty
    registry, so its candidate passes the gate on the floor alone, whatever the test order.
    """
    api = running_stack.api
    created = api.trigger(QUICK_CONF)
    finished = api.wait_for_run(created["dag_run_id"])
    running_stack.timings["local_trigger_to_first_task_s"] = finished.trigger_to_first_task_s
    running_stack.timings["local_wall_time_s"] = finished.wall_time_s
    report(
        pytestconfig,
        f"stack: REST-triggered run on LocalExecutor: {finished.timings()}",
    )
    return finished
