"""Drive faults into the local stack: find its processes by pid, kill or stop them, and read back
what Airflow, MLflow and the artifact folder recorded.

Every process is found through what the stack recorded (supervisord's pids and the session
record of ``scripts/local_stack/supervise.py``) and, for a task, through the title Airflow gives its task
process (``airflow worker -- <task instance id>``); nothing is looked up or killed by name alone.
Restarting is the stack's job (compose's ``restart: unless-stopped`` under supervisord): the
tests only kill, stop (as ``docker compose stop``) and start (as ``docker compose start``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from review_sentiment.config import REGISTERED_MODEL_NAME
from scripts.local_stack.stack import Stack
from scripts.local_stack.supervise import Session, proc_stat
from tests.stack.airflow_api import DAG_ID, FINISHED, AirflowApi
from tests.support import measure
from tests.support.measure import wait_until
from tests.support.quick_run import QUICK_CONF

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "faults"
EXPERIMENT = "sentiment-retrain"
TERMINAL_RUN_STATES = {"FINISHED", "FAILED", "KILLED"}
TRAIN_TIMEOUT_FILE = "train_timeout"  # read by the cluster policy of tests/faults/conftest.py
# The stack tests' quick run, force-promoted: these tests are about surviving a fault with one
# version, not about whether a 3-epoch model on a 20% sample clears the gate (whose bars change
# with the model). test_mlflow_outage.py runs the real gate and accepts either decision.
FAULT_CONF: dict[str, Any] = {**QUICK_CONF, "force_promote": True}


def report(config: pytest.Config, line: str) -> None:
    """A measured figure to the CI log and test-artifacts/faults/measurements.txt."""
    measure.report(config, line, ARTIFACTS)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


@dataclass
class FaultStack:
    """The running stack plus what the fault tests need to break it and to inspect the damage."""

    stack: Stack
    api: AirflowApi
    secrets: dict[str, str]
    config: pytest.Config
    unwritable: list[Path] = field(default_factory=list)

    # --- Airflow -----------------------------------------------------------------------------
    def trigger(self, name: str, conf: dict[str, Any] | None = None) -> str:
        """A manual run of FAULT_CONF (with ``conf`` merged in), under a readable run id."""
        run_id = f"faults__{name}__{datetime.now(UTC):%Y%m%dT%H%M%S}"
        self.api.request(
            "POST",
            f"/dags/{DAG_ID}/dagRuns",
            json={"dag_run_id": run_id, "logical_date": None, "conf": {**FAULT_CONF, **(conf or {})}},
        )
        return run_id

    def task_instances(self, run_id: str) -> dict[tuple[str, int], dict[str, Any]]:
        return {(ti["task_id"], ti["map_index"]): ti for ti in self.api.task_instances(run_id)}

    def task_instance(self, run_id: str, task_id: str, map_index: int = -1) -> dict[str, Any] | None:
        return self.task_instances(run_id).get((task_id, map_index))

    def tries(self, run_id: str, task_id: str, map_index: int = -1) -> list[dict[str, Any]]:
        """Every try of a task instance, oldest first (Airflow keeps a row per try)."""
        path = f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{task_id}/{map_index}/tries"
        return sorted(self.api.get(path)["task_instances"], key=lambda t: t["try_number"])

    def state_of(self, run_id: str, task_id: str, map_index: int = -1) -> str | None:
        ti = self.task_instance(run_id, task_id, map_index)
        return ti["state"] if ti else None

    def fail_run(self, run_id: str) -> None:
        """Mark a run failed through the REST API (stops its running tasks, no further tries)."""
        self.api.request("PATCH", f"/dags/{DAG_ID}/dagRuns/{run_id}", json={"state": "failed"})

    def wait_in_run(
        self, run_id: str, check: Callable[[], Any], timeout: float, what: str, interval: float = 0.5
    ) -> Any:
        """``wait_until``, failing at once if the run has already finished (no point waiting)."""

        def checked() -> Any:
            value = check()
            if not value and self.api.run(run_id)["state"] in FINISHED:
                states = {k: v["state"] for k, v in self.task_instances(run_id).items()}
                raise AssertionError(f"run {run_id} finished while waiting for {what}: {states}")
            return value

        return wait_until(checked, timeout, what, interval)

    def wait_for_training(self, run_id: str, timeout: float = 420) -> list[str]:
        """Wait until a train try has logged an epoch; returns the MLflow runs that have."""

        def logged() -> list[str]:
            running = [r for r in self.train_runs(run_id) if r.info.status == "RUNNING"]
            return [r.info.run_id for r in running if self.epochs_logged(r.info.run_id) >= 1]

        return self.wait_in_run(run_id, logged, timeout, "a train task to log its first epoch")

    # --- processes ---------------------------------------------------------------------------
    def sessions(self, name: str | None = None) -> list[Session]:
        """Every session the stack's programs started (or one program's), oldest first."""
        return [s for s in self.stack.supervisor.sessions() if name is None or s.name == name]

    def pid(self, name: str) -> int:
        """The pid supervisord runs program ``name`` as (0 when it is not running)."""
        return self.stack.supervisor.info()[name]["pid"]

    def task_process(self, ti_id: str) -> int | None:
        """The pid of the process running task instance ``ti_id``, in a scheduler's session.

        LocalExecutor runs each task in a child of the scheduler, titled
        ``airflow worker -- <task instance id>``; the id is unique to this try's row.
        """
        title = f"airflow worker -- {ti_id}"
        sessions = {s.pid for s in self.sessions("airflow-scheduler")}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            fields = proc_stat(int(entry.name))
            if (
                fields
                and fields[0] != "Z"
                and int(fields[3]) in sessions
                and _cmdline(int(entry.name)) == title
            ):
                return int(entry.name)
        return None

    @staticmethod
    def alive(pid: int) -> bool:
        fields = proc_stat(pid)
        return fields is not None and fields[0] != "Z"

    def wait_back(self, name: str, old_pid: int, timeout: float = 180) -> float:
        """Wait until program ``name`` runs as another pid than ``old_pid`` and passes its compose
        healthcheck; returns the seconds waited."""
        started = time.monotonic()

        def back() -> bool:
            pid = self.stack.supervisor.program_pid(name)
            return pid not in (0, old_pid) and self.stack.healthy(name)

        wait_until(back, timeout, f"{name} to run again and pass its healthcheck")
        return time.monotonic() - started

    def kill_mlflow(self) -> int:
        """SIGKILL every process of the MLflow server (its session), as a crash; returns its pid."""
        pid = self.pid("mlflow")
        session = next(s for s in self.sessions("mlflow") if s.pid == pid)
        session.signal(signal.SIGKILL)
        wait_until(lambda: not session.members(), 20, "the MLflow server to die")
        return pid

    def stop(self, name: str) -> None:
        """A clean stop that stays stopped, as ``docker compose stop NAME``."""
        self.stack.supervisor.rpc.stopProcess(name)

    def start(self, name: str, timeout: float = 180) -> float:
        """``docker compose start NAME`` (if it is not running), then wait for its healthcheck;
        returns the seconds until healthy."""
        started = time.monotonic()
        if self.stack.supervisor.info()[name]["statename"] not in {"STARTING", "RUNNING", "BACKOFF"}:
            self.stack.supervisor.rpc.startProcess(name, False)
        wait_until(
            lambda: self.pid(name) and self.stack.healthy(name), timeout, f"{name} to pass its healthcheck"
        )
        return time.monotonic() - started

    def kill_scheduler(self) -> int:
        """SIGKILL the scheduler process itself (as the OOM killer would); returns its pid."""
        pid = self.pid("airflow-scheduler")
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not self.alive(pid), 20, "the scheduler to die")
        return pid

    def wait_for_run_tolerant(self, run_id: str, timeout: float) -> Any:
        """Wait for the run to finish, riding out an API server that restarts meanwhile."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                state = self.api.run(run_id)["state"]
            except (AssertionError, OSError, requests.RequestException):
                state = None
            if state in FINISHED:
                return self.api.wait_for_run(run_id, timeout=30)
            time.sleep(2)
        raise AssertionError(f"run {run_id} did not finish within {timeout:.0f}s")

    def set_train_timeout(self, seconds: float | None) -> None:
        """Give train tries that start from now on this execution_timeout (None: the DAG's own),
        through the fault stack's cluster policy (tests/faults/conftest.py)."""
        path = self.stack.airflow_home / "config" / TRAIN_TIMEOUT_FILE
        if seconds is None:
            path.unlink(missing_ok=True)
        else:
            path.write_text(str(seconds))

    # --- the artifact folder -------------------------------------------------------------------
    @property
    def artifact_root(self) -> Path:
        """SENTIMENT_ARTIFACT_ROOT: the sentiment-artifacts volume's folder."""
        return self.stack.volume("sentiment-artifacts")

    def run_dir(self, run_id: str) -> Path:
        return self.artifact_root / DAG_ID / run_id

    def partial_files(self, run_id: str) -> list[Path]:
        """Leftovers of interrupted writes: atomic_file/atomic_dir temporaries and swapped-out
        directories, in the run's folder and in the MLflow server's artifact store."""
        found = []
        for folder in (self.run_dir(run_id), self.stack.volume("mlflow-artifacts")):
            if folder.is_dir():
                found += [p for p in folder.rglob("*") if p.name.endswith(".tmp") or ".old-" in p.name]
        return found

    def make_unwritable(self, folder: Path) -> None:
        """No process may create anything in ``folder``: root ignores mode bits, not the immutable flag."""
        folder.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            subprocess.run(["chattr", "+i", str(folder)], check=True)
        else:
            folder.chmod(0o555)
        self.unwritable.append(folder)

    def make_writable(self, folder: Path) -> None:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(folder)], check=False)
        else:
            folder.chmod(0o755)
        if folder in self.unwritable:
            self.unwritable.remove(folder)

    # --- MLflow --------------------------------------------------------------------------------
    def mlflow(self) -> Any:
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.stack.mlflow_url, registry_uri=self.stack.mlflow_url)

    def versions(self, run_id: str | None = None) -> list[Any]:
        """Model versions of one DAG run (by the pipeline_run_id tag register sets), or all."""
        query = f"name = '{REGISTERED_MODEL_NAME}'"
        if run_id is not None:
            query += f" and tags.`pipeline_run_id` = '{DAG_ID}/{run_id}'"
        return self.mlflow().search_model_versions(query)

    def champion(self) -> Any | None:
        from mlflow.exceptions import MlflowException

        try:
            return self.mlflow().get_model_version_by_alias(REGISTERED_MODEL_NAME, "champion")
        except MlflowException:
            return None

    def clear_champion(self) -> None:
        """Start a test from "no champion": its candidate then passes the gate on the floor alone,
        whatever run-to-run noise there is between two trainings of the same grid."""
        if self.champion() is not None:
            self.mlflow().delete_registered_model_alias(REGISTERED_MODEL_NAME, "champion")

    def mlflow_runs(self, run_id: str, task_id: str | None = None) -> list[Any]:
        """The MLflow runs the tasks of one DAG run started (every try), or those of one task."""
        client = self.mlflow()
        experiment = client.get_experiment_by_name(EXPERIMENT)
        if experiment is None:
            return []
        query = f"tags.`airflow.run_id` = '{run_id}'"
        if task_id is not None:
            query += f" and tags.`airflow.task_id` = '{task_id}'"
        return client.search_runs([experiment.experiment_id], query)

    def train_runs(self, run_id: str) -> list[Any]:
        """The MLflow runs the train tasks of one DAG run started (every try of every point)."""
        return self.mlflow_runs(run_id, "train")

    def epochs_logged(self, mlflow_run_id: str) -> int:
        return len(self.mlflow().get_metric_history(mlflow_run_id, "loss"))

    # --- the common verdict --------------------------------------------------------------------
    def check_outcome(self, run_id: str) -> dict[str, Any]:
        """What every fault must leave behind: one version for the run, gated consistently, no
        MLflow run left RUNNING, no partial file. Returns the figures for the report."""
        versions = self.versions(run_id)
        assert len(versions) == 1, [v.version for v in versions]
        version = versions[0]
        assert version.status == "READY"
        verdict, decision = version.tags.get("gate.decision"), version.tags.get("outcome")
        assert verdict in {"passed", "refused"}, version.tags
        assert decision == ("promoted" if verdict == "passed" else "kept"), version.tags
        champion = self.champion()
        if decision == "promoted":
            assert champion is not None
            assert champion.version == version.version
        statuses = [run.info.status for run in self.mlflow_runs(run_id)]
        assert statuses, "no MLflow run for the run's tasks"
        assert set(statuses) <= TERMINAL_RUN_STATES, statuses
        partial = self.partial_files(run_id)
        assert partial == [], partial
        return {
            "version": version.version,
            "decision": decision,
            "versions": len(versions),
            "mlflow_runs": len(statuses),
            "partial_files": len(partial),
        }

    # --- teardown ------------------------------------------------------------------------------
    def cleanup(self) -> None:
        """Make folders writable again (``down`` then stops every recorded session)."""
        for folder in list(self.unwritable):
            with contextlib.suppress(OSError):
                self.make_writable(folder)
