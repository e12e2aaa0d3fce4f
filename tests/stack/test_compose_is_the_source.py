"""``make stack`` runs docker-compose.yaml's own service definitions: a variable deleted from one
service's ``environment`` in a copy of the compose file is missing for that service under
``make stack`` too, which then fails on it, says which service and why, and leaves nothing running.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from scripts.local_stack.stack import Stack
from tests.stack.conftest import report
from tests.support.local_stack import gen_secrets, leftovers, run_script
from tests.support.servers import free_port

pytestmark = [pytest.mark.slow, pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]
# airflow-init's admin login: compose once substituted it into SIMPLE_AUTH_MANAGER_USERS only, and
# deploy/airflow/airflow-init.sh exited 1 on its first line.
DELETED = "      AIRFLOW_ADMIN_USERNAME: ${AIRFLOW_ADMIN_USERNAME:?run deploy/gen-secrets.sh}\n"


def test_a_variable_deleted_from_compose_fails_that_service(
    tmp_path: Path, pytestconfig: pytest.Config
) -> None:
    text = (ROOT / "docker-compose.yaml").read_text()
    assert text.count(DELETED) == 1, "the line this test deletes has changed"
    broken = tmp_path / "docker-compose.yaml"
    broken.write_text(text.replace(DELETED, ""))
    root = Path(os.environ.get("TMPDIR", "/tmp")) / f"sentiment-broken-{os.getpid()}"
    root.mkdir(mode=0o755)
    env = {
        **os.environ,
        "STACK_COMPOSE_FILE": str(broken),
        "STACK_DIR": str(root / "state"),
        "STACK_ENV_FILE": str(root / ".env"),
        "STACK_AIRFLOW_PORT": str(free_port()),
        "STACK_MLFLOW_PORT": str(free_port()),
        "SENTIMENT_DATA_DIR": str(root),
    }
    try:
        assert gen_secrets(root / ".env", env).returncode == 0
        started = time.monotonic()
        up = run_script("up", env, timeout=600)
        failed_s = time.monotonic() - started
        left = leftovers(Stack.load(root / "state", root / ".env"))
    finally:
        run_script("down", env, timeout=120)
        shutil.rmtree(root, ignore_errors=True)
    report(
        pytestconfig, f"stack: a compose file without airflow-init's login failed `up` in {failed_s:.0f} s"
    )
    assert up.returncode == 1, up.stdout + up.stderr
    assert "airflow-init failed (exit status 1)" in up.stderr, up.stderr
    assert "AIRFLOW_ADMIN_USERNAME is not set" in up.stderr, up.stderr
    assert "postgres healthy" in up.stdout, "the failure must come from airflow-init, not before it"
    assert not left, f"`up` left processes after failing: {left}"
