"""Celery scale-out on the local stack: a real Redis broker, the scheduler switched to
CeleryExecutor, two ``airflow celery worker`` processes (concurrency 1 each), and a DAG run whose
mapped ``train`` instances land on both workers.

The broker URL is deploy/airflow.env's AIRFLOW__CELERY__BROKER_URL, localised by scripts/stack.py
to the Redis this test starts; the workers are recorded in the stack's state file, so
``scripts/stack.py down`` would stop them even if this module's teardown did not run.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.stack.airflow_api import FinishedRun
from tests.stack.conftest import QUICK_CONF, ROOT, RunningStack, report
from tests.support.servers import free_port

pytestmark = [pytest.mark.slow, pytest.mark.integration]

WORKERS = ("worker-1", "worker-2")
# Both runs' candidates are scored against the champion on the same data; which one is better is
# not this test's concern.
CELERY_CONF = {**QUICK_CONF, "force_promote": True}


@dataclass
class RedisServer:
    """Debian's redis-server on a free loopback port, no persistence, stopped by its pid."""

    root: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def log(self) -> Path:
        return self.root / "redis.log"

    def start(self, timeout: float = 30) -> RedisServer:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        if not Path(binary).is_file():
            reason = "redis-server is missing (apt-get install redis-server)"
            if os.environ.get("CI") == "true":
                pytest.fail(f"{reason}; on CI the Celery test must run", pytrace=False)
            pytest.skip(reason)
        self.process = subprocess.Popen(
            [binary, "--bind", "127.0.0.1", "--port", str(self.port), "--protected-mode", "yes",
             "--save", "", "--appendonly", "no", "--dir", str(self.root), "--logfile", str(self.log)],
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while not self.ping():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start:\n{self.log.read_text()[-2000:]}")
            time.sleep(0.2)
        return self

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.kill(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()


def _worker_ready(log: Path) -> bool:
    """Celery prints ``celery@<name> ready.`` once the worker consumes from the broker."""
    text = log.read_text(errors="replace") if log.exists() else ""
    return " ready." in text.rsplit("\n--- ", 1)[-1]


@pytest.fixture(scope="module")
def celery_stack(
    running_stack: RunningStack, rest_run: FinishedRun, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningStack]:
    """The stack with Redis, a CeleryExecutor scheduler and two workers; LocalExecutor again after."""
    stack = running_stack.stack
    redis = RedisServer(tmp_path_factory.mktemp("redis")).start()
    stack.ports["redis"] = redis.port
    celery = stack.airflow_env(running_stack.secrets, overrides={"AIRFLOW__CORE__EXECUTOR": "CeleryExecutor"})
    assert celery["AIRFLOW__CELERY__BROKER_URL"] == f"redis://127.0.0.1:{redis.port}/0"
    deadline = time.monotonic() + 300
    try:
        stack.stop("scheduler")
        stack.start("scheduler", stack.scheduler_argv(), celery)
        for name in WORKERS:
            worker_env = {
                **celery,
                "AIRFLOW__CORE__HOSTNAME_CALLABLE": "tests.stack.worker_hostname.worker_hostname",
                "STACK_WORKER_NAME": name,
                "PYTHONPATH": f"{celery['PYTHONPATH']}{os.pathsep}{ROOT}",
            }
            argv = [str(stack.bin_dir / "airflow"), "celery", "worker", "--celery-hostname", f"{name}@%h",
                    "--concurrency", "1", "--skip-serve-logs"]  # fmt: skip
            stack.start(name, argv, worker_env)
        stack.wait("the CeleryExecutor scheduler", stack.scheduler_healthy, deadline)
        stack.wait(
            "both Celery workers",
            lambda: all(_worker_ready(Path(stack.procs[name].log)) for name in WORKERS),
            deadline,
        )
        yield running_stack
    finally:
        for name in WORKERS:
            stack.stop(name, timeout=60)
        stack.stop("scheduler")
        stack.ports.pop("redis", None)
        stack.start("scheduler", stack.scheduler_argv(), stack.airflow_env(running_stack.secrets))
        redis.stop()
        stack.wait("the LocalExecutor scheduler", stack.scheduler_healthy, time.monotonic() + 180)


def test_mapped_train_tasks_run_on_both_celery_workers(
    celery_stack: RunningStack, pytestconfig: pytest.Config
) -> None:
    api = celery_stack.api
    created = api.trigger(CELERY_CONF)
    finished = api.wait_for_run(created["dag_run_id"])
    celery_stack.timings["celery_trigger_to_first_task_s"] = finished.trigger_to_first_task_s
    celery_stack.timings["celery_wall_time_s"] = finished.wall_time_s
    report(
        pytestconfig,
        f"stack: run on CeleryExecutor (2 workers x 1 slot): {finished.timings()}",
    )
    assert finished.state == "success", finished.states()
    hosts = {(ti["task_id"], ti["map_index"]): ti["hostname"] for ti in finished.task_instances}
    # Every task ran on a worker, none under the scheduler...
    assert set(hosts.values()) <= set(WORKERS), hosts
    # ...and the two train instances, queued together, on one worker each.
    assert {hosts[("train", 0)], hosts[("train", 1)]} == set(WORKERS), hosts
    assert {ti["queue"] for ti in finished.task_instances} == {"default"}
