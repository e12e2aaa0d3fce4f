"""One local stack: docker-compose.yaml's services as local processes, no Docker (README.md here).

`up` starts the compose file's services (or applies its changes to a running stack, as `docker
compose up -d`) and waits for their healthchecks and the DAG; `down` stops every program and all
they started, by pid; `status` shows each program's state, health and log; `airflow` runs the CLI
with airflow-scheduler's environment. Commands, environments (env_file, environment, interpolated
from .env and the caller's environment), healthchecks, depends_on, restart policies and profiles
come from the compose file (compose.py); mapping.py changes host names, ports, container paths and
the images' built-ins (images.py) only; supervisord (supervise.py) runs the programs, restarts them
and logs each to <state>/logs/<service>.log.

Environment (optional): STACK_COMPOSE_FILE (':'-separated, relative to the repository, later files
override earlier ones; default docker-compose.yaml), STACK_ENV_FILE (default <repo>/.env, written
by deploy/gen-secrets.sh if missing), STACK_DIR (state; default <repo>/.local/stack), STACK_<SERVICE>_PORT
and STACK_AIRFLOW_PORT (local ports; default the published one, else free), COMPOSE_PROFILES.
"""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

from scripts.local_stack import compose, images
from scripts.local_stack.images import HOST, StackError
from scripts.local_stack.mapping import Health, Mapper
from scripts.local_stack.supervise import Program, Supervisor

ROOT = Path(__file__).resolve().parents[2]
GEN_SECRETS = ROOT / "deploy" / "gen-secrets.sh"
STATE_FILE, DAG_ID = "stack.json", "sentiment_retrain"
API, MLFLOW, CLI_SERVICE = ("airflow-apiserver", 8080), ("mlflow", 5000), "airflow-scheduler"
UP = {"STARTING", "RUNNING", "BACKOFF"}
START_LIMIT = 3  # starts of one program while `up` waits, before it counts as failing
CONDITIONS = {"service_started": {"started", "healthy", "completed"}, "service_healthy": {"healthy"},
              "service_completed_successfully": {"completed"}}  # fmt: skip


def _http(url: str, data: dict | None = None, token: str | None = None) -> tuple[int, bytes]:
    headers = {"Content-Type": "application/json"} | ({"Authorization": f"Bearer {token}"} if token else {})
    body = json.dumps(data).encode() if data is not None else None
    try:
        with urllib.request.urlopen(urllib.request.Request(url, body, headers), timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (OSError, ValueError):
        return 0, b""


@dataclass
class Stack:
    """One local stack: its state folder, .env, compose files and saved state (stack.json)."""

    state_dir: Path
    env_file: Path
    compose_files: list[Path]
    saved: dict = field(default_factory=dict)  # ports, healthchecks, databases

    def __post_init__(self) -> None:
        self.logs, self.airflow_home = self.state_dir / "logs", self.state_dir / "airflow"
        self.supervisor = Supervisor(self.state_dir, self.logs)
        self.ports: dict[str, int] = self.saved.setdefault("ports", {})  # "service:container port" -> local
        self.health: dict[str, dict] = self.saved.setdefault("health", {})  # service -> its Health
        self.databases: list[str] = self.saved.setdefault("databases", [])  # postgres-image services

    @classmethod
    def from_env(cls) -> Stack:
        state = Path(os.environ.get("STACK_DIR") or ROOT / ".local" / "stack").resolve()
        files = (os.environ.get("STACK_COMPOSE_FILE") or "docker-compose.yaml").split(os.pathsep)
        env_file = Path(os.environ.get("STACK_ENV_FILE") or ROOT / ".env").resolve()
        return cls.load(state, env_file, [ROOT / name for name in files])

    @classmethod
    def load(cls, state_dir: Path, env_file: Path, compose_files: list[Path] | None = None) -> Stack:
        path = Path(state_dir) / STATE_FILE
        saved = json.loads(path.read_text()) if path.exists() else {}
        files = compose_files or [Path(p) for p in saved.get("compose_files", [ROOT / "docker-compose.yaml"])]
        return cls(Path(state_dir), Path(env_file), files, saved)

    def save(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.saved.update(compose_files=[str(p) for p in self.compose_files], health=self.health,
                          databases=self.databases)  # fmt: skip
        (self.state_dir / STATE_FILE).write_text(json.dumps(self.saved, indent=1) + "\n")

    def volume(self, name: str) -> Path:
        return self.state_dir / "volumes" / name

    def url(self, service: tuple[str, int]) -> str:
        """``http://127.0.0.1:<local port>`` of a (service, container port)."""
        return f"http://{HOST}:{self.ports[f'{service[0]}:{service[1]}']}"

    airflow_url = property(lambda self: self.url(API))
    mlflow_url = property(lambda self: self.url(MLFLOW))

    # --- configuration -----------------------------------------------------------------------
    def secrets(self) -> dict[str, str]:
        """The .env values, written first by deploy/gen-secrets.sh if the file is missing."""
        if not self.env_file.exists():
            done = subprocess.run(["bash", str(GEN_SECRETS), "--output", str(self.env_file)], text=True,
                                  capture_output=True, check=False)  # fmt: skip
            if done.returncode != 0:
                raise StackError(f"deploy/gen-secrets.sh failed:\n{done.stderr}")
            print(done.stdout.strip())
        return compose.read_env_file(self.env_file, os.environ)

    def mapper(self) -> Mapper:
        """The active services, interpolated as compose does (the caller's environment over .env)."""
        variables = {**self.secrets(), **os.environ}
        services = compose.active_services(compose.load(self.compose_files, variables), variables)
        return Mapper(services, variables, ROOT, self.state_dir, self.ports, Path(sys.executable).parent)

    def healthy(self, name: str) -> bool:
        """One run of the service's compose healthcheck, here; True for a service without one."""
        health = Health(**self.health[name])
        return not health.argv or self.supervisor.run_beside(name, health.argv, health.timeout)

    # --- up ------------------------------------------------------------------------------------
    def up(self, timeout: float = 900) -> None:
        """Start every service once its dependencies meet their conditions; wait for health."""
        t0, mapper = time.monotonic(), self.mapper()
        depends = {name: compose.dependencies(mapper.services, name) for name in mapper.services}
        depth = compose.depths(mapper.services)  # supervisord's priority: start and stop order
        programs = {name: mapper.program(name, 10 * depth[name]) for name in depth}
        self.health = {name: asdict(mapper.health(name)) for name in depth}
        self.databases = [name for name in depth if mapper.kinds[name] == "postgres"]
        init_dirs = {name: mapper.mounts(name).get(images.POSTGRES_INITDB) for name in self.databases}
        self.save()
        supervisor = self.supervisor
        supervisor.write(list(programs.values()))
        if supervisor.daemon() is None:
            if any(s.members() for s in supervisor.sessions()):
                raise StackError("processes of an earlier start still run: `make stack-down` first")
            supervisor.start_daemon()
        for name in supervisor.update():
            print(f"stack: {name}: its configuration changed or it is no longer enabled: stopped")
        try:
            self._start(programs, depends, init_dirs, t0 + timeout)
            self._wait_for_dag(mapper.variables, t0 + timeout)
        except BaseException:
            print(f"stack: start failed; stopping everything (logs in {self.logs})", file=sys.stderr)
            self.down(quiet=True)
            raise
        print(f"stack: all healthy ({time.monotonic() - t0:.0f} s)")

    def _start(self, programs: dict[str, Program], depends: dict, init_dirs: dict, deadline: float) -> None:
        """Compose's start: each service once its dependencies meet their conditions, until every
        service is healthy (by its healthcheck) or, for a one-shot job, has exited 0."""
        supervisor, t0, seen = self.supervisor, time.monotonic(), len(self.supervisor.sessions())
        status: dict[str, str] = {}  # started | healthy | completed
        started_at: dict[str, float] = {}
        next_check: dict[str, float] = collections.defaultdict(float)
        while sum(status.get(name) in ("healthy", "completed") for name in programs) < len(programs):
            if time.monotonic() > deadline:
                raise StackError(f"timed out; not ready: {sorted(set(programs) - set(status))}")
            info = supervisor.info()
            starts = collections.Counter(s.name for s in supervisor.sessions()[seen:])
            for name, program in programs.items():
                state, health = info[name], Health(**self.health[name])
                if name not in status:
                    if all(status.get(dep) in CONDITIONS[cond] for dep, cond in depends[name].items()):
                        if state["statename"] not in UP:
                            if name in init_dirs and images.init_cluster(
                                program.env, program.user, init_dirs[name], self.state_dir,
                                self.logs / f"{name}-init.log",
                            ):  # fmt: skip
                                print(f"stack: {name}: new cluster initialised")
                            supervisor.rpc.startProcess(name, False)
                        status[name], started_at[name] = "started", time.monotonic()
                    continue
                if program.restart == "no" and not health.argv:  # a one-shot job: must succeed
                    if state["statename"] == "EXITED" and state["exitstatus"] == 0:
                        status[name] = "completed"
                    elif state["statename"] not in UP:
                        raise self._failed(name, f"failed (exit status {state['exitstatus']})")
                elif starts[name] > START_LIMIT or state["statename"] == "FATAL":
                    raise self._failed(name, f"keeps exiting ({starts[name]} starts)")
                elif status[name] == "started" and time.monotonic() >= next_check[name]:
                    # A check that nothing waits for yet runs once every service is started.
                    waited_for = any(name in depends[other] for other in programs if other not in status)
                    if waited_for or len(status) == len(programs):
                        checked = time.monotonic()
                        if self.healthy(name):
                            status[name] = "healthy"
                            print(f"stack: {name} healthy ({time.monotonic() - t0:.0f} s)")
                        next_check[name] = time.monotonic() + max(2.0, 2 * (time.monotonic() - checked))
                    limit = health.start_period + health.interval * health.retries
                    if status[name] != "healthy" and time.monotonic() - started_at[name] > limit:
                        raise self._failed(name, f"is unhealthy after {limit:.0f} s")
            time.sleep(0.5)

    def _failed(self, name: str, why: str) -> StackError:
        return StackError(f"{name} {why}; the end of {self.logs / name}.log:\n{self.supervisor.tail(name)}")

    def _wait_for_dag(self, variables: dict[str, str], deadline: float) -> None:
        """This project's own readiness: the admin login of .env works and the DAG is parsed."""
        login = {key: variables[f"AIRFLOW_ADMIN_{key.upper()}"] for key in ("username", "password")}
        status, body = _http(f"{self.airflow_url}/auth/token", data=login)
        if status != 201:
            raise StackError(f"/auth/token refused the login of {self.env_file}: {status} {body[:300]!r}")
        token = json.loads(body)["access_token"]
        while _http(f"{self.airflow_url}/api/v2/dags/{DAG_ID}", token=token)[0] != 200:
            status, body = _http(f"{self.airflow_url}/api/v2/importErrors", token=token)
            errors = json.loads(body).get("import_errors", []) if status == 200 else []
            if errors:
                error = errors[0]
                raise StackError(f"{error['filename']} does not import:\n{error['stack_trace'][-3000:]}")
            if time.monotonic() > deadline:
                raise StackError(f"timed out waiting for DAG {DAG_ID} to be parsed")
            time.sleep(1)

    # --- down and status -------------------------------------------------------------------------
    def down(self, quiet: bool = False) -> list[str]:
        """Stop supervisord's programs (reverse start order, each by its stop signal), supervisord,
        then whatever is left in any recorded session; returns what was running."""
        supervisor, running = self.supervisor, []
        if supervisor.daemon() is not None:
            running = [name for name, info in supervisor.info().items() if info["statename"] in UP]
            supervisor.shutdown()
        left = supervisor.sweep(last=set(self.databases))
        if not quiet:
            print(f"stack: stopped {', '.join(running)}" if running else "stack: no program was running")
            if left:
                print(f"stack: stopped what was left in the sessions of {', '.join(left)}")
        return running + left

    def status(self) -> int:
        """Print each program's state, health and log, what earlier starts left, and the URLs."""
        if self.supervisor.daemon() is None:
            print(f"stack: not running (state in {self.state_dir})")
            return 1
        infos, ok = self.supervisor.info(), True
        for name, info in infos.items():
            running = info["statename"] in ("STARTING", "RUNNING")
            health = ("healthy" if self.healthy(name) else "UNHEALTHY") if running else ""
            ok &= (running or info["statename"] == "EXITED") and health != "UNHEALTHY"
            print(f"  {name:<22} {info['statename']:<8} {health:<9} {info['description']:<28} {name}.log")
        for old in self.supervisor.sessions():
            if old.name in infos and old.pid != infos[old.name]["pid"] and (left := len(old.members())):
                print(f"  left by an earlier {old.name} (session {old.pid}): {left} processes")
        print(self.summary())
        return 0 if ok else 1

    def summary(self) -> str:
        secrets = self.secrets()
        mlflow_login = f"{secrets.get('MLFLOW_ADMIN_USERNAME')} / {secrets.get('MLFLOW_ADMIN_PASSWORD')}"
        ports = [f"  {key:<26} -> {HOST}:{port}" for key, port in sorted(self.ports.items())]
        # The three logins airflow-init makes (FAB auth manager), as .env has them.
        logins = [
            f"              {role:<8} {secrets.get(f'AIRFLOW_{role.upper()}_USERNAME')} / "
            f"{secrets.get(f'AIRFLOW_{role.upper()}_PASSWORD')}"
            for role in ("admin", "operator", "viewer")
        ]
        urls = [
            f"  Airflow UI  {self.airflow_url}   logins ({self.env_file}):",
            *logins,
            f"  MLflow UI   {self.mlflow_url}   login {mlflow_login} (the admin; the tasks log in as"
            f" {secrets.get('MLFLOW_SERVICE_USERNAME')})",
        ]
        return "\n".join(["", *ports, "", *urls, f"  Logs        {self.logs}", ""])
