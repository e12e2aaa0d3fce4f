"""Drive faults into the local stack: find its processes by pid, kill and restart them, and read
back what Airflow, MLflow and the artifact folder recorded.

Every process is found through what the stack recorded (``scripts/stack.py``'s pids and
sessions) and, for a task, through the title Airflow gives its task process (``airflow worker --
<task instance id>``); nothing is looked up or killed by name alone.
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

from scripts.stack import Proc, Stack, _proc_stat
from tests.stack.airflow_api import DAG_ID, FINISHED, AirflowApi
from tests.stack.conftest import QUICK_CONF
from tests.support import measure
from tests.support.measure import wait_until

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "faults"
MODEL_NAME = "customer-sentiment-analysis"  # SENTIMENT_MODEL_NAME of deploy/airflow.env
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
    # Components that died in a test: their sessions may hold orphaned workers, stopped at the end.
    dead_schedulers: list[Proc] = field(default_factory=list)
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

    # --- processes ---------------------------------------------------------------------------
    def scheduler_sessions(self) -> set[int]:
        sessions = {proc.pid for proc in self.dead_schedulers}
        if "scheduler" in self.stack.procs:
            sessions.add(self.stack.procs["scheduler"].pid)
        return sessions

    def task_process(self, ti_id: str) -> int | None:
        """The pid of the process running task instance ``ti_id``, in a scheduler's session.

        LocalExecutor runs each task in a child of the scheduler, titled
        ``airflow worker -- <task instance id>``; the id is unique to this try's row.
        """
        title = f"airflow worker -- {ti_id}"
        sessions = self.scheduler_sessions()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            fields = _proc_stat(int(entry.name))
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
        fields = _proc_stat(pid)
        return fields is not None and fields[0] != "Z"

    def kill_mlflow(self) -> None:
        """SIGKILL every process of the MLflow server (its session), by the recorded pid."""
        proc = self.stack.procs["mlflow"]
        proc.send(signal.SIGKILL)
        assert proc.wait(20), "the MLflow server survived SIGKILL"
        del self.stack.procs["mlflow"]
        self.stack.save()

    def stop_mlflow(self) -> None:
        """A clean stop (SIGTERM), as ``docker compose stop mlflow``."""
        self.stack.stop("mlflow")

    def start_mlflow(self, timeout: float = 180) -> float:
        """Start the MLflow server again on its port; returns the seconds until /health answered."""
        started = time.monotonic()
        self.stack._start_mlflow(self.secrets)
        wait_until(self.stack.mlflow_healthy, timeout, "the MLflow server to answer /health")
        return time.monotonic() - started

    def restart_postgres(self) -> float:
        """Fast shutdown, then start on the same data and port; returns the seconds it was down."""
        stopped = time.monotonic()
        self.stack.stop("postgres")
        self.stack._start_postgres(self.secrets, time.monotonic() + 120)
        return time.monotonic() - stopped

    def kill_scheduler(self) -> int:
        """SIGKILL the scheduler process itself (as the OOM killer would); returns its pid."""
        proc = self.stack.procs.pop("scheduler")
        self.dead_schedulers.append(proc)
        self.stack.save()
        os.kill(proc.pid, signal.SIGKILL)
        wait_until(lambda: not proc.alive(), 20, "the scheduler to die")
        return proc.pid

    def start_scheduler(self, timeout: float = 180) -> float:
        """Start a scheduler as ``scripts/stack.py up`` does; returns the seconds until healthy."""
        started = time.monotonic()
        self.stack.start("scheduler", self.stack.scheduler_argv(), self.stack.airflow_env(self.secrets))
        wait_until(self.stack.scheduler_healthy, timeout, "the restarted scheduler's /health")
        return time.monotonic() - started

    def set_train_timeout(self, seconds: float | None) -> None:
        """Give train tries that start from now on this execution_timeout (None: the DAG's own),
        through the fault stack's cluster policy (tests/faults/conftest.py)."""
        path = self.stack.airflow_home / "config" / TRAIN_TIMEOUT_FILE
        if seconds is None:
            path.unlink(missing_ok=True)
        else:
            path.write_text(str(seconds))

    def airflow_argv(self, name: str) -> list[str]:
        """The command ``scripts/stack.py up`` starts an Airflow component with."""
        airflow = self.stack._airflow_bin
        return {
            "api-server": self.stack.api_server_argv(),
            "scheduler": self.stack.scheduler_argv(),
            "dag-processor": [airflow, "dag-processor"],
            "triggerer": [airflow, "triggerer", "--skip-serve-logs"],
        }[name]

    def restart_exited(self) -> list[str]:
        """Start again every Airflow component that has exited, as compose's ``restart:
        unless-stopped`` does for their containers; returns their names."""
        restarted = []
        for name in ("api-server", "scheduler", "dag-processor", "triggerer"):
            proc = self.stack.procs.get(name)
            if proc is None or proc.alive():
                continue
            self.dead_schedulers.append(proc)  # its session may hold children: stopped at the end
            self.stack.start(name, self.airflow_argv(name), self.stack.airflow_env(self.secrets))
            restarted.append(name)
        return restarted

    def wait_for_run_restarting(self, run_id: str, timeout: float) -> tuple[Any, list[str]]:
        """Wait for the run to finish while restarting exited components; returns the finished
        run and the names restarted (in order)."""
        restarted: list[str] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            restarted += self.restart_exited()
            try:
                run = self.api.run(run_id)
            except (AssertionError, OSError):  # the API server itself may be restarting
                run = {"state": None}
            if run["state"] in FINISHED:
                return self.api.wait_for_run(run_id, timeout=30), restarted
            time.sleep(2)
        raise AssertionError(f"run {run_id} did not finish within {timeout:.0f}s (restarted {restarted})")

    # --- the artifact folder -------------------------------------------------------------------
    @property
    def artifact_root(self) -> Path:
        return self.stack.state_dir / "artifacts"

    def run_dir(self, run_id: str) -> Path:
        return self.artifact_root / DAG_ID / run_id

    def partial_files(self, run_id: str) -> list[Path]:
        """Leftovers of interrupted writes: atomic_file/atomic_dir temporaries and swapped-out
        directories, in the run's folder and in the MLflow server's artifact store."""
        found = []
        for folder in (self.run_dir(run_id), self.stack.state_dir / "mlartifacts"):
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
        query = f"name = '{MODEL_NAME}'"
        if run_id is not None:
            query += f" and tags.`pipeline_run_id` = '{DAG_ID}/{run_id}'"
        return self.mlflow().search_model_versions(query)

    def champion(self) -> Any | None:
        from mlflow.exceptions import MlflowException

        try:
            return self.mlflow().get_model_version_by_alias(MODEL_NAME, "champion")
        except MlflowException:
            return None

    def clear_champion(self) -> None:
        """Start a test from "no champion": its candidate then passes the gate on the floor alone,
        whatever run-to-run noise there is between two trainings of the same grid."""
        if self.champion() is not None:
            self.mlflow().delete_registered_model_alias(MODEL_NAME, "champion")

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
        decision = version.tags.get("gate.decision")
        assert decision in {"promoted", "refused"}, version.tags
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
        """Stop what killed schedulers left (by their session), make folders writable again."""
        for proc in self.dead_schedulers:
            proc.stop(10)
        for folder in list(self.unwritable):
            with contextlib.suppress(OSError):
                self.make_writable(folder)
