"""Celery scale-out on the local stack, switched on as a user would: ``make stack`` again with
``COMPOSE_PROFILES=celery`` and ``AIRFLOW__CORE__EXECUTOR=CeleryExecutor`` (compose's own switch,
see docker-compose.yaml), plus a compose override file that runs two workers of one slot each.
The stack restarts the Airflow services whose environment changed and adds redis, the workers and
flower from the compose file; a DAG run's mapped ``train`` instances then land on both workers.
``make stack`` without them afterwards brings the LocalExecutor stack back.
"""

from __future__ import annotations

import copy
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from scripts.local_stack import compose
from tests.stack.airflow_api import FinishedRun
from tests.stack.conftest import ROOT, RunningStack, report
from tests.support.quick_run import QUICK_CONF
from tests.support.servers import free_port

pytestmark = [pytest.mark.slow, pytest.mark.integration]

WORKERS = ("worker-1", "worker-2")
# Both runs' candidates are scored against the champion on the same data; which one is better is
# not this test's concern.
CELERY_CONF = {**QUICK_CONF, "force_promote": True}


def _two_workers(path: Path) -> Path:
    """A compose override: airflow-worker twice, one slot each, named so that the task instances
    record which one ran them (both run on this machine, so the host name would not tell)."""
    base = yaml.safe_load((ROOT / "docker-compose.yaml").read_text())["services"]["airflow-worker"]
    services = {}
    for index, name in enumerate(WORKERS, start=1):
        worker = copy.deepcopy(base) if index > 1 else {}
        worker["command"] = ["celery", "worker", "--skip-serve-logs", "--concurrency", "1",
                             "--celery-hostname", f"{name}@%h"]  # fmt: skip
        worker["environment"] = {
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "tests.stack.worker_hostname.worker_hostname",
            "STACK_WORKER_NAME": name,
            "PYTHONPATH": f"/opt/airflow/include:{ROOT}",
            **({key: value for key, value in base["environment"].items()} if index > 1 else {}),
        }
        worker["healthcheck"] = {
            **base["healthcheck"],
            "test": ["CMD-SHELL", f'celery --app airflow.providers.celery.executors.celery_executor.app '
                                  f'inspect ping -d "{name}@$(hostname)"'],
        }  # fmt: skip
        services["airflow-worker" if index == 1 else f"airflow-{name}"] = worker
    path.write_text(yaml.safe_dump({"services": services}, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def celery_stack(
    running_stack: RunningStack,
    rest_run: FinishedRun,
    tmp_path_factory: pytest.TempPathFactory,
    pytestconfig: pytest.Config,
) -> Iterator[RunningStack]:
    """The stack with the celery profile and two workers; LocalExecutor again after."""
    if not shutil.which("redis-server"):
        reason = "redis-server is missing (apt-get install redis-server)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; on CI the Celery test must run", pytrace=False)
        pytest.skip(reason)
    override = _two_workers(tmp_path_factory.mktemp("celery") / "two-workers.yaml")
    celery = {
        "STACK_COMPOSE_FILE": f"docker-compose.yaml{os.pathsep}{override}",
        "COMPOSE_PROFILES": "celery",
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "STACK_FLOWER_PORT": str(free_port()),
    }
    session = running_stack.session
    try:
        output = session.script("up", celery)
        report(pytestconfig, f"stack: switched to CeleryExecutor:\n{output.strip()}")
        yield running_stack
    finally:
        session.script("up", {"STACK_COMPOSE_FILE": "docker-compose.yaml"})


def test_the_celery_profile_runs_redis_two_workers_and_flower(celery_stack: RunningStack) -> None:
    programs = ("redis", "airflow-worker", "airflow-worker-2", "flower", "airflow-scheduler")
    # A program that passed its healthcheck can still be in supervisord's STARTING window (its
    # first 10 s, startsecs); RUNNING follows unless it exits, which would fail this check.
    deadline = time.monotonic() + 30
    while True:
        info = celery_stack.stack.supervisor.info()
        if all(info[name]["statename"] == "RUNNING" for name in programs) or time.monotonic() > deadline:
            break
        time.sleep(1)
    for name in programs:
        assert info[name]["statename"] == "RUNNING", (name, info[name])
    assert (
        celery_stack.stack.supervisor.spec("airflow-scheduler")["env"]["AIRFLOW__CORE__EXECUTOR"]
        == "CeleryExecutor"
    )
    broker = f"redis://127.0.0.1:{celery_stack.stack.ports['redis:6379']}/0"
    assert (
        celery_stack.stack.supervisor.spec("airflow-worker")["env"]["AIRFLOW__CELERY__BROKER_URL"] == broker
    )
    assert celery_stack.stack.healthy("flower")


def test_mapped_train_tasks_run_on_both_celery_workers(
    celery_stack: RunningStack, pytestconfig: pytest.Config
) -> None:
    api = celery_stack.api
    created = api.trigger(CELERY_CONF)
    finished = api.wait_for_run(created["dag_run_id"])
    celery_stack.timings["celery_trigger_to_first_task_s"] = finished.trigger_to_first_task_s
    celery_stack.timings["celery_wall_time_s"] = finished.wall_time_s
    report(pytestconfig, f"stack: run on CeleryExecutor (2 workers x 1 slot): {finished.timings()}")
    assert finished.state == "success", finished.states()
    # The branch's path markers (EmptyOperator) are set by the scheduler, and skipped tasks never run.
    ran = [
        ti
        for ti in finished.task_instances
        if ti["state"] == "success" and not ti["task_id"].startswith("gate_")
    ]
    hosts = {(ti["task_id"], ti["map_index"]): ti["hostname"] for ti in ran}
    # Every task that ran did so on a worker, none under the scheduler...
    assert set(hosts.values()) <= set(WORKERS), hosts
    # ...and the three tasks that become ready together (two train instances and the baseline)
    # on both single-slot workers: which worker takes which is the broker's race (a quick train
    # can end before the baseline does, and its worker takes the second train), but a worker
    # that sat idle while three tasks waited would be a scale-out that does not work.
    together = {hosts[("train", 0)], hosts[("train", 1)], hosts[("baseline", -1)]}
    assert together == set(WORKERS), hosts
    assert {ti["queue"] for ti in ran} == {"default"}


def test_the_compose_override_is_read_as_compose_merges_it(tmp_path: Path) -> None:
    override = _two_workers(tmp_path / "two-workers.yaml")
    # Every variable .env holds (.env.example lists them), so compose's `:?` checks pass.
    names = [line.split("=", 1)[0] for line in (ROOT / ".env.example").read_text().splitlines()
             if line[:1].isupper() and "=" in line]  # fmt: skip
    variables = {**dict.fromkeys(names, "k"), "COMPOSE_PROFILES": "celery", "SENTIMENT_DATA_DIR": "/data"}
    services = compose.load([ROOT / "docker-compose.yaml", override], variables)["services"]
    first, second = services["airflow-worker"], services["airflow-worker-2"]
    assert first["environment"]["AIRFLOW__CORE__FERNET_KEY"] == "k"  # kept from the base file
    assert first["environment"]["STACK_WORKER_NAME"] == "worker-1"
    assert second["environment"]["AIRFLOW__CORE__FERNET_KEY"] == "k"
    assert second["depends_on"] == first["depends_on"]
    assert second["profiles"] == ["celery"]
