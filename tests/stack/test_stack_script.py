"""Fast checks of scripts/stack.py without starting the stack: how deploy/airflow.env is localised,
and how processes are told apart and stopped by pid."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from scripts import stack as stack_script
from scripts.stack import AIRFLOW_ENV_FILE, Proc, Stack, StackError, read_env_file

PORTS = {"airflow": 18080, "mlflow": 15000, "postgres": 15432, "scheduler-health": 18974, "redis": 16379}
SECRETS = {
    "POSTGRES_PASSWORD": "pg-secret",
    "AIRFLOW_DB_PASSWORD": "airflow-db-secret",
    "MLFLOW_DB_PASSWORD": "mlflow-db-secret",
    "AIRFLOW_ADMIN_USERNAME": "ops",
    "AIRFLOW_ADMIN_PASSWORD": "admin-secret",
    "AIRFLOW__CORE__FERNET_KEY": "fernet",
    "AIRFLOW__API_AUTH__JWT_SECRET": "jwt",
    "AIRFLOW__API__SECRET_KEY": "api",
    "SENTIMENT_DATA_DIR": "/srv/reviews",
}
LOCAL_PORTS = {"postgres": 15432, "mlflow": 15000, "airflow-apiserver": 18080, "redis": 16379}


@pytest.fixture
def stack(tmp_path: Path) -> Stack:
    return Stack(state_dir=tmp_path / "state", env_file=tmp_path / ".env", ports=dict(PORTS))


def test_container_path_lines_are_the_marked_ones() -> None:
    values, container_paths = read_env_file(AIRFLOW_ENV_FILE)
    assert container_paths == {
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE",
        "REVIEWS_PATH",
        "SENTIMENT_ARTIFACT_ROOT",
    }
    assert all(values[key].startswith("/opt/airflow/") for key in container_paths)


def test_only_hosts_ports_and_container_paths_change(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__CORE__PARALLELISM", "3")  # the caller's environment never leaks in
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://elsewhere:5000")
    shared, container_paths = read_env_file(AIRFLOW_ENV_FILE)
    env = stack.airflow_env(SECRETS)
    assert "AIRFLOW__CORE__PARALLELISM" not in env
    for key, value in shared.items():
        local = env[key]
        if key in container_paths:
            assert Path(local).is_relative_to(stack.state_dir) or Path(local).is_relative_to("/srv/reviews")
            assert Path(local).name == Path(value).name
        elif "://" in value:
            before, after = urlsplit(value), urlsplit(local)
            assert after.hostname == "127.0.0.1", key
            assert (after.scheme, after.username, after.path) == (before.scheme, before.username, before.path)
            assert after.port == LOCAL_PORTS.get(before.hostname, PORTS["mlflow"]), key
        else:
            assert local == value, key
    assert not [key for key, value in env.items() if "/opt/airflow" in value]
    assert env["REVIEWS_PATH"] == "/srv/reviews/womens_clothing_reviews.csv.gz"
    assert env["MLFLOW_TRACKING_URI"] == env["MLFLOW_UI_URL"] == "http://127.0.0.1:15000"
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://127.0.0.1:18080/execution/"


def test_secrets_and_compose_settings_come_from_dot_env(stack: Stack) -> None:
    env = stack.airflow_env(SECRETS)
    for key in ("AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY"):
        assert env[key] == SECRETS[key]
    assert env["PGPASSWORD"] == SECRETS["AIRFLOW_DB_PASSWORD"]
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] == "ops:admin"
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert env["AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_HOST"] == "127.0.0.1"
    assert "admin-secret" not in env.values(), "the admin password is for airflow-init only"
    overridden = stack.airflow_env(SECRETS, overrides={"AIRFLOW__CORE__EXECUTOR": "CeleryExecutor"})
    assert overridden["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("SOME_URL=http://elsewhere:1234/x", "unknown to the local stack"),
        ("SOME_PATH=/opt/airflow/other", "not marked"),
        ("# container path\nSOME_PATH=/srv/elsewhere", "no known mount point"),
    ],
)
def test_unknown_hosts_and_paths_are_refused(
    stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, line: str, message: str
) -> None:
    env_file = tmp_path / "airflow.env"
    env_file.write_text(AIRFLOW_ENV_FILE.read_text() + f"\n{line}\n")
    monkeypatch.setattr(stack_script, "AIRFLOW_ENV_FILE", env_file)
    with pytest.raises(StackError, match=message):
        stack.airflow_env(SECRETS)


def test_missing_secrets_are_named(stack: Stack) -> None:
    stack.env_file.write_text("POSTGRES_PASSWORD=x\nAIRFLOW_DB_PASSWORD=\n")
    with pytest.raises(StackError, match="AIRFLOW_DB_PASSWORD"):
        stack.secrets()


def test_state_file_round_trip(stack: Stack) -> None:
    stack.procs["mlflow"] = Proc(pid=123, ticks=456, log="/x/mlflow.log")
    stack.save()
    loaded = Stack.load(stack.state_dir, stack.env_file)
    assert loaded.ports == PORTS
    assert loaded.procs == stack.procs


def test_a_reused_pid_is_not_stopped() -> None:
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        real = Proc(sleeper.pid, stack_script._start_ticks(sleeper.pid), "-", session=False)
        impostor = Proc(sleeper.pid, real.ticks + 1, "-", session=False)
        assert real.alive()
        assert not impostor.alive()
        impostor.stop(timeout=1)
        assert sleeper.poll() is None, "a process with another start time was signalled"
        real.stop(timeout=10)
        assert stack_script._proc_stat(sleeper.pid) is None, "the recorded process is still there"
    finally:
        sleeper.kill()
        sleeper.wait()


def test_stop_takes_the_whole_session_and_ignores_zombies(tmp_path: Path) -> None:
    # Like the scheduler: a child in the same process group, and one in a group of its own (as
    # Airflow runs each task); both stay in the component's session.
    code = (
        "import subprocess\n"
        "subprocess.Popen(['sleep', '60'], process_group=0)\n"
        "subprocess.Popen(['sleep', '60']).wait()\n"
    )
    proc = stack_script._spawn([sys.executable, "-c", code], {"PATH": "/usr/bin:/bin"}, tmp_path / "x.log")
    deadline = time.monotonic() + 10
    while len(proc.members()) < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    members = proc.members()
    assert len(members) == 3
    groups = {stack_script._proc_stat(pid)[2] for pid in members}
    assert len(groups) == 2, "expected one child in a process group of its own"
    proc.stop(timeout=10)
    assert proc.members() == []
    # Gone, or zombies of a parent that has not reaped them yet.
    assert all((stack_script._proc_stat(pid) or ["Z"])[0] == "Z" for pid in members)

    # A finished child nobody reaped yet (a zombie) counts as stopped.
    quick = subprocess.Popen(["true"])
    zombie = Proc(quick.pid, stack_script._start_ticks(quick.pid), "-", session=False)
    time.sleep(0.5)
    assert zombie.ticks is not None
    assert not zombie.alive()
    quick.wait()
