"""``scripts/stack.py up`` in a throwaway folder for one test session, ``down`` (by pid) after.

Shared by the stack tests and the fault tests: free loopback ports, its own .env and state
folder, the real review file copied in under the name deploy/airflow.env gives it.
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
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from scripts.stack import AIRFLOW_ENV_FILE, Stack, read_env_file
from tests.stack.airflow_api import AirflowApi
from tests.support.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "stack.py"


@dataclass
class StackSession:
    """A stack that is up: its processes, the admin API client, its secrets and state folder."""

    stack: Stack
    api: AirflowApi
    secrets: dict[str, str]
    state: Path
    up_seconds: float


def _script(command: str, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), command],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


@contextmanager
def stack_session(
    reviews_path: Path, artifacts: Path, prefix: str, airflow_config: dict[str, str] | None = None
) -> Iterator[StackSession]:
    """Bring the stack up, yield it, then bring it down and keep its logs under ``artifacts``.

    Args:
        reviews_path: The real review file, copied into the stack's data folder.
        artifacts: Where stack-up.log, the component and task logs and the pids go.
        prefix: Prefix of the temporary folder.
        airflow_config: Files to write into ``$AIRFLOW_HOME/config`` before start (e.g. a
            test-only ``airflow_local_settings.py``).

    Raises:
        AssertionError: ``up`` or ``down`` failed, or a process outlived ``down``.
    """
    # Not under pytest's tmp folder: it is private to root, and PostgreSQL runs as its own user.
    root = Path(tempfile.mkdtemp(prefix=prefix))
    root.chmod(0o755)
    data_dir = root / "data"
    data_dir.mkdir()
    # A copy, as a bind mount would show it: ingest resolves symlinks and accepts only files
    # under the data root.
    reviews_name = Path(read_env_file(AIRFLOW_ENV_FILE)[0]["REVIEWS_PATH"]).name
    shutil.copyfile(reviews_path, data_dir / reviews_name)
    state = root / "state"
    if airflow_config:
        config = state / "airflow" / "config"
        config.mkdir(parents=True)
        for name, text in airflow_config.items():
            (config / name).write_text(text)
    env = {
        **os.environ,
        "STACK_DIR": str(state),
        "STACK_ENV_FILE": str(root / ".env"),
        "STACK_AIRFLOW_PORT": str(free_port()),
        "STACK_MLFLOW_PORT": str(free_port()),
        "SENTIMENT_DATA_DIR": str(data_dir),
    }
    artifacts.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    up = _script("up", env, timeout=900)
    up_seconds = time.monotonic() - started
    (artifacts / "stack-up.log").write_text(up.stdout + up.stderr)
    try:
        assert up.returncode == 0, f"scripts/stack.py up failed:\n{up.stdout[-3000:]}\n{up.stderr[-5000:]}"
        stack = Stack.load(state, root / ".env")
        secrets = stack.secrets()
        api = AirflowApi(
            stack.airflow_url, secrets["AIRFLOW_ADMIN_USERNAME"], secrets["AIRFLOW_ADMIN_PASSWORD"]
        )
        yield StackSession(stack, api, secrets, state, up_seconds)
    finally:
        down = _script("down", env, timeout=300)
        # Reloaded: a test that restarts a component records its new pid.
        stack = Stack.load(state, root / ".env")
        left = [name for name, proc in stack.procs.items() if proc.alive()]
        if stack.logs.is_dir():
            shutil.copytree(stack.logs, artifacts / "logs", dirs_exist_ok=True)
        task_logs = state / "airflow" / "logs"
        if task_logs.is_dir():
            shutil.copytree(task_logs, artifacts / "task-logs", dirs_exist_ok=True)
        (artifacts / "stack-state.json").write_text(
            json.dumps(
                {"ports": stack.ports, "processes": {k: vars(p) for k, p in stack.procs.items()}}, indent=2
            )
        )
        shutil.rmtree(root, ignore_errors=True)
        assert down.returncode == 0, down.stdout + down.stderr
        assert not left, f"still running after scripts/stack.py down: {left}"
