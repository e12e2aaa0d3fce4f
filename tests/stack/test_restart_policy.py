"""Compose's restart policies under ``make stack``: a component SIGKILLed (as the OOM killer would)
comes back by itself, healthy by its own compose healthcheck, within 30 s, with nothing of the
killed one left running (as a container's processes die with it); ``status`` shows the new
process; ``down`` stops everything (checked by the session fixture's teardown)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest

from tests.stack.conftest import ROOT, RunningStack, report
from tests.support.measure import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.integration]

BACK_WITHIN_S = 30


@pytest.mark.parametrize("name", ["airflow-scheduler", "mlflow"])
def test_a_killed_component_comes_back_by_itself(
    running_stack: RunningStack, pytestconfig: pytest.Config, name: str
) -> None:
    stack = running_stack.stack
    supervisor = stack.supervisor
    killed = supervisor.info()[name]["pid"]
    assert killed, supervisor.info()[name]
    os.kill(killed, signal.SIGKILL)
    killed_at = time.monotonic()

    def back() -> bool:
        pid = supervisor.program_pid(name)  # the new program's own healthcheck, not a leftover's
        return pid not in (0, killed) and stack.healthy(name)

    wait_until(back, 120, f"{name} to come back healthy", interval=0.5)
    back_s = time.monotonic() - killed_at
    restarted = supervisor.info()[name]
    pids = f"pid {killed} -> {restarted['pid']}"
    report(pytestconfig, f"stack: {name} SIGKILLed: back and healthy after {back_s:.1f} s ({pids})")
    assert back_s < BACK_WITHIN_S, f"{name} took {back_s:.1f} s to come back"
    assert [s.pid for s in supervisor.sessions() if s.name == name][-1] == restarted["pid"]


def test_status_lists_every_program_and_nothing_of_a_killed_one(running_stack: RunningStack) -> None:
    env = running_stack.session.env
    done = subprocess.run([sys.executable, "-m", "scripts.local_stack", "status"], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    for name in ("postgres", "mlflow", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor"):
        assert f"  {name} " in done.stdout
    lines = [line for line in done.stdout.splitlines() if line.startswith("  airflow-scheduler ")]
    assert re.search(r" (STARTING|RUNNING) +healthy ", lines[0]), lines
    # The scheduler killed by the test above left nothing running: its restart killed its session.
    supervisor = running_stack.stack.supervisor
    current = supervisor.info()["airflow-scheduler"]["pid"]
    earlier = [s for s in supervisor.sessions() if s.name == "airflow-scheduler" and s.pid != current]
    assert earlier, "the test above killed the scheduler once"
    assert not any(s.members() for s in earlier), [s.members() for s in earlier]
    assert "left by an earlier airflow-scheduler" not in done.stdout, done.stdout
