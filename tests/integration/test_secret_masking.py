"""Secrets in Airflow connections are masked in task logs.

A connection with a password comes from the environment (``AIRFLOW_CONN_...``, as compose and
``make stack`` provide ``reviews_db``); a test-only DAG in a temporary folder fetches it and logs
the password, its URI and the password inside a longer message, through the task logger and print.
``airflow dags test --use-executor`` runs it the way the scheduler does (LocalExecutor, the task
supervised in its own process, talking to a real ``airflow api-server``) on a throwaway SQLite
metadata DB. The task log file (what the UI shows) must hold ``***`` and never the password.
The same API server, on Airflow's default auth manager, answers anonymous calls with 401 except
its health endpoint.

Seen while writing this: ``dags test``'s own console echoes the task's log lines unmasked, with or
without ``--use-executor``; only the task log is masked. That console is a developer's terminal.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.support.airflow_cli import AIRFLOW, airflow
from tests.support.servers import free_port

pytestmark = pytest.mark.slow

PLUGINS = Path(__file__).resolve().parents[2] / "plugins"

PROBE_DAG = """
import logging

from airflow.sdk import DAG, BaseHook, task

log = logging.getLogger(__name__)

with DAG(dag_id="mask_probe", schedule=None):

    @task
    def leak_the_password():
        conn = BaseHook.get_connection("reviews_db")
        log.info("PROBE-1 password=%s", conn.password)
        log.info("PROBE-2 uri=%s", conn.get_uri())
        print(f"PROBE-3 printed {conn.password} inside a sentence")
        log.warning("PROBE-4 done for %s", conn.login)

    leak_the_password()
"""


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _status(url: str, method: str) -> int:
    request = urllib.request.Request(url, method=method, data=b"{}" if method == "POST" else None)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def _stop(process: subprocess.Popen) -> None:
    """Stop the API server's process group by its pid (it forks workers)."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    home = tmp_path_factory.mktemp("airflow-mask")
    dags = home / "dags"
    dags.mkdir()
    (dags / "mask_probe.py").write_text(PROBE_DAG)
    password = secrets.token_hex(16)
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")},
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        # The stack's executor: Airflow's LocalExecutor with a shutdown that cannot hang (upstream's
        # left this command idle for 15 minutes after its run succeeded, in CI).
        "AIRFLOW__CORE__EXECUTOR": "sentiment_executor.LocalExecutor",
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PLUGINS),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        # Shared by the API server and the executor that signs the task's token.
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
        "AIRFLOW_CONN_REVIEWS_DB": f"postgresql://reader:{password}@db.example:5432/reviews",
    }
    migrate = airflow(env, "db", "migrate")
    assert migrate.returncode == 0, migrate.stderr[-3000:]
    with open(home / "api-server.log", "wb") as api_log:
        api = subprocess.Popen(
            [AIRFLOW, "api-server", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=api_log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 180
        while not _healthy(f"http://127.0.0.1:{port}/api/v2/monitor/health"):
            assert api.poll() is None, (home / "api-server.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the API server did not come up within 180 s"
            time.sleep(1)
        base = f"http://127.0.0.1:{port}"
        anonymous = {
            path: _status(base + path, method)
            for method, path in (
                ("GET", "/api/v2/dags"),
                ("GET", "/api/v2/connections/reviews_db"),
                ("POST", "/api/v2/dags/mask_probe/dagRuns"),
                ("GET", "/api/v2/monitor/health"),
            )
        }
        done = airflow(env, "dags", "test", "mask_probe", "--use-executor")
    finally:
        _stop(api)
    assert done.returncode == 0, (done.stdout + done.stderr)[-5000:]
    task_logs = sorted(
        (home / "logs").glob("dag_id=mask_probe/run_id=*/task_id=leak_the_password/attempt=*.log")
    )
    events = [
        json.loads(line).get("event", "")
        for path in task_logs
        for line in path.read_text().splitlines()
        if line.startswith("{")
    ]
    files = {str(path.relative_to(home)): path.read_text(errors="replace") for path in home.rglob("*.log")}
    return {
        "password": password,
        "task_logs": task_logs,
        "events": events,
        "files": files,
        "anonymous": anonymous,
    }


def test_the_probe_task_ran_once_and_logged(probe) -> None:
    assert len(probe["task_logs"]) == 1, probe["task_logs"]
    assert "PROBE-4 done for reader" in probe["events"]  # the login is no secret


def test_password_is_masked_in_the_task_log(probe) -> None:
    events = probe["events"]
    assert "PROBE-1 password=***" in events
    assert "PROBE-2 uri=postgres://reader:***@db.example:5432/reviews" in events
    assert "PROBE-3 printed *** inside a sentence" in events  # stdout is captured and masked too
    assert not [e for e in events if probe["password"] in e]


def test_password_is_in_no_log_file(probe) -> None:
    """Task logs, the API server's log and anything else Airflow wrote under its home."""
    assert probe["files"], "no log files found"
    leaked = sorted(name for name, text in probe["files"].items() if probe["password"] in text)
    assert leaked == []


def test_the_api_refuses_anonymous_calls_except_health(probe) -> None:
    """Airflow 3.3's default auth manager here (no all-admins switch); the stack's FAB one: tests/stack."""
    assert probe["anonymous"] == {
        "/api/v2/dags": 401,
        "/api/v2/connections/reviews_db": 401,
        "/api/v2/dags/mask_probe/dagRuns": 401,
        "/api/v2/monitor/health": 200,
    }
