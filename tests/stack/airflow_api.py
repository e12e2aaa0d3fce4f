"""A small client of Airflow's public REST API v2, as the stack tests use it (JWT from /auth/token)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import requests

DAG_ID = "sentiment_retrain"
FINISHED = {"success", "failed"}


def parse_time(value: str) -> datetime:
    """An API timestamp (ISO 8601, ``Z`` or an offset) as an aware datetime."""
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@dataclass
class FinishedRun:
    """A DAG run that reached a final state, with its task instances and timings."""

    run: dict[str, Any]
    task_instances: list[dict[str, Any]]

    @property
    def run_id(self) -> str:
        return self.run["dag_run_id"]

    @property
    def state(self) -> str:
        return self.run["state"]

    @property
    def trigger_to_first_task_s(self) -> float:
        """From the trigger (the run's ``queued_at``) to the first task instance's start."""
        starts = [parse_time(ti["start_date"]) for ti in self.task_instances if ti.get("start_date")]
        return (min(starts) - parse_time(self.run["queued_at"])).total_seconds()

    @property
    def wall_time_s(self) -> float:
        """From the run's start to its end, as the scheduler recorded them."""
        return (parse_time(self.run["end_date"]) - parse_time(self.run["start_date"])).total_seconds()

    def timings(self) -> str:
        """The measured figures, for the test report."""
        return (
            f"trigger -> first running task {self.trigger_to_first_task_s:.1f} s, "
            f"run wall time {self.wall_time_s:.1f} s ({self.state})"
        )

    def states(self) -> dict[tuple[str, int], str]:
        return {(ti["task_id"], ti["map_index"]): ti["state"] for ti in self.task_instances}


class AirflowApi:
    """Authenticated calls to ``/api/v2`` of one Airflow API server."""

    def __init__(self, base_url: str, username: str, password: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = requests.Session()
        response = requests.post(
            f"{self.base_url}/auth/token", json={"username": username, "password": password}, timeout=30
        )
        assert response.status_code == 201, f"/auth/token: {response.status_code} {response.text[:300]}"
        self.session.headers["Authorization"] = f"Bearer {response.json()['access_token']}"

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.session.request(method, f"{self.base_url}/api/v2{path}", timeout=30, **kwargs)
        assert response.ok, f"{method} {path}: {response.status_code} {response.text[:500]}"
        return response.json()

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params)

    def dag(self) -> dict[str, Any]:
        return self.get(f"/dags/{DAG_ID}")

    def runs(self, **params: Any) -> list[dict[str, Any]]:
        return self.get(f"/dags/{DAG_ID}/dagRuns", limit=100, **params)["dag_runs"]

    def run(self, run_id: str, dag_id: str = DAG_ID) -> dict[str, Any]:
        return self.get(f"/dags/{dag_id}/dagRuns/{run_id}")

    def task_instances(self, run_id: str, dag_id: str = DAG_ID) -> list[dict[str, Any]]:
        return self.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", limit=100)["task_instances"]

    def trigger(self, conf: dict[str, Any]) -> dict[str, Any]:
        """POST a manual run with ``conf``; returns the created run."""
        return self.request("POST", f"/dags/{DAG_ID}/dagRuns", json={"logical_date": None, "conf": conf})

    def wait_for_run(self, run_id: str, timeout: float = 900, dag_id: str = DAG_ID) -> FinishedRun:
        """Poll the run (of ``dag_id``) until it is finished; fails the test on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.run(run_id, dag_id)
            if run["state"] in FINISHED:
                return FinishedRun(run, self.task_instances(run_id, dag_id))
            time.sleep(2)
        states = {(t["task_id"], t["map_index"]): t["state"] for t in self.task_instances(run_id, dag_id)}
        raise AssertionError(f"run {run_id} did not finish within {timeout:.0f}s: {states}")
