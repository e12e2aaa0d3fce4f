"""``python -m scripts.local_stack up`` in a throwaway folder for one test session, ``down`` (by pid) after.

Shared by the stack tests and the fault tests: free loopback ports, its own state folder, the
real review file copied in under the name deploy/airflow.env gives it, and a .env written by
``deploy/gen-secrets.sh`` with a bare Python (the first ``python3`` on PATH outside this
virtualenv, without site-packages), as ``make secrets`` does on a fresh machine.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from scripts.local_stack.compose import read_env_file
from scripts.local_stack.stack import Stack
from tests.stack.airflow_api import AirflowApi
from tests.support.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
STACK_COMMAND = [sys.executable, "-m", "scripts.local_stack"]  # `make stack`, run from ROOT
GEN_SECRETS = ROOT / "deploy" / "gen-secrets.sh"
VENV_BIN = Path(sys.executable).parent


@dataclass
class StackSession:
    """A stack that is up: its state, the admin API client, its secrets, and how to drive it."""

    stack: Stack
    api: AirflowApi
    secrets: dict[str, str]
    state: Path
    up_seconds: float
    env: dict[str, str]

    def script(self, command: str, extra: Mapping[str, str] | None = None, timeout: float = 900) -> str:
        """Run ``python -m scripts.local_stack COMMAND`` against this stack; returns its output, fails
        on error."""
        done = run_script(command, {**self.env, **(extra or {})}, timeout)
        assert done.returncode == 0, (
            f"scripts.local_stack {command} failed:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
        )
        self.stack = Stack.load(self.state, self.stack.env_file)
        return done.stdout


def bare_python() -> str:
    """The first ``python3`` on PATH that is not this virtualenv's (this one if there is none)."""
    path = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if Path(p) != VENV_BIN)
    return shutil.which("python3", path=path) or sys.executable


def gen_secrets(out: Path, env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    """``deploy/gen-secrets.sh --output OUT`` with a bare Python and no virtualenv on PATH."""
    path = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if Path(p) != VENV_BIN)
    gen_env = {**env, "PYTHON": bare_python(), "PATH": path}
    return subprocess.run(["bash", str(GEN_SECRETS), "--output", str(out)], env=gen_env, capture_output=True,
                          text=True, timeout=60, check=False)  # fmt: skip


def run_script(command: str, env: Mapping[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    argv = [*STACK_COMMAND, command]
    return subprocess.run(argv, env=dict(env), capture_output=True, text=True, timeout=timeout, cwd=ROOT)


@contextmanager
def mlflow_login(secrets: Mapping[str, str]) -> Iterator[None]:
    """While it lasts, MLflow clients of this process (and of the processes it starts) log in to
    the stack's MLflow as the service user of ``secrets`` (the .env), as the DAG's tasks do."""
    login = {"MLFLOW_TRACKING_USERNAME": secrets["MLFLOW_SERVICE_USERNAME"],
             "MLFLOW_TRACKING_PASSWORD": secrets["MLFLOW_SERVICE_PASSWORD"]}  # fmt: skip
    before = {key: os.environ.get(key) for key in login}
    os.environ.update(login)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def leftovers(stack: Stack) -> list[str]:
    """What still runs of a stack: supervisord, or any process of a recorded session."""
    return [f"{s.name} (session {s.pid}): {s.members()}" for s in stack.supervisor.sessions() if s.members()]


@contextmanager
def stack_session(
    reviews_path: Path,
    artifacts: Path,
    prefix: str,
    airflow_config: dict[str, str] | None = None,
    env: Mapping[str, str] | None = None,
    dotenv: Mapping[str, str] | None = None,
) -> Iterator[StackSession]:
    """Bring the stack up, yield it, then bring it down and keep its logs under ``artifacts``.

    While it is up, this process's MLflow clients log in as its service user (:func:`mlflow_login`).

    Args:
        reviews_path: The real review file, copied into the stack's data folder.
        artifacts: Where stack-up.log, the program and task logs go.
        prefix: Prefix of the temporary folder.
        airflow_config: Files to write into the Airflow home's ``config`` folder before start
            (e.g. a test-only ``airflow_local_settings.py``).
        env: More variables for ``python -m scripts.local_stack`` (e.g. STACK_COMPOSE_FILE).
        dotenv: More lines for the generated .env, as an operator adds them (e.g. the mail
            settings); values are written single-quoted, i.e. literally.

    Raises:
        AssertionError: gen-secrets, ``up`` or ``down`` failed, or a process outlived ``down``.
    """
    # Not under pytest's tmp folder: it is private to root, and PostgreSQL runs as its own user.
    root = Path(tempfile.mkdtemp(prefix=prefix))
    root.chmod(0o755)
    data_dir = root / "data"
    data_dir.mkdir()
    # A copy, as a bind mount would show it: ingest resolves symlinks and accepts only files
    # under the data root.
    reviews_name = Path(read_env_file(ROOT / "deploy" / "airflow.env")["REVIEWS_PATH"]).name
    shutil.copyfile(reviews_path, data_dir / reviews_name)
    state = root / "state"
    if airflow_config:
        config = state / "airflow" / "config"
        config.mkdir(parents=True)
        for name, text in airflow_config.items():
            (config / name).write_text(text)
    script_env = {
        **os.environ,
        "STACK_DIR": str(state),
        "STACK_ENV_FILE": str(root / ".env"),
        "STACK_AIRFLOW_PORT": str(free_port()),
        "STACK_MLFLOW_PORT": str(free_port()),
        "SENTIMENT_DATA_DIR": str(data_dir),
        **(env or {}),
    }
    secrets = gen_secrets(root / ".env", script_env)
    assert secrets.returncode == 0, f"deploy/gen-secrets.sh with {bare_python()} -S failed:\n{secrets.stderr}"
    if dotenv:
        with open(root / ".env", "a", encoding="utf-8") as fh:
            fh.writelines(f"{key}='{value}'\n" for key, value in dotenv.items())
    artifacts.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    up = run_script("up", script_env, timeout=900)
    up_seconds = time.monotonic() - started
    (artifacts / "stack-up.log").write_text(up.stdout + up.stderr)
    try:
        assert up.returncode == 0, f"scripts.local_stack up failed:\n{up.stdout[-3000:]}\n{up.stderr[-5000:]}"
        stack = Stack.load(state, root / ".env")
        secrets_env = stack.secrets()
        api = AirflowApi(
            stack.airflow_url, secrets_env["AIRFLOW_ADMIN_USERNAME"], secrets_env["AIRFLOW_ADMIN_PASSWORD"]
        )
        with mlflow_login(secrets_env):
            yield StackSession(stack, api, secrets_env, state, up_seconds, script_env)
    finally:
        stack = Stack.load(state, root / ".env")
        before = [s.name for s in stack.supervisor.sessions() if s.members()]
        down = run_script("down", script_env, timeout=300)
        left = leftovers(stack)
        if stack.logs.is_dir():
            shutil.copytree(stack.logs, artifacts / "logs", dirs_exist_ok=True)
        task_logs = stack.volume("airflow-logs")
        if task_logs.is_dir():
            shutil.copytree(task_logs, artifacts / "task-logs", dirs_exist_ok=True)
        (artifacts / "stack-state.json").write_text(
            json.dumps({"sessions_at_down": before, **stack.saved}, indent=1)
        )
        (artifacts / "stack-down.log").write_text(down.stdout + down.stderr)
        shutil.rmtree(root, ignore_errors=True)
        assert down.returncode == 0, down.stdout + down.stderr
        assert not left, f"still running after scripts.local_stack down: {left}"
