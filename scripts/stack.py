#!/usr/bin/env python3
"""`make stack` / `make stack-down`: docker-compose.yaml's services as local processes, no Docker.

    scripts/stack.py up        start the compose file's services (or apply its changes to a running
                               stack, as `docker compose up -d`); wait until healthy and the DAG is
                               parsed; print the URLs and the login
    scripts/stack.py down      stop every program and everything they started (by pid)
    scripts/stack.py status    each program's state, health and log; the URLs
    scripts/stack.py airflow ARGS...   the airflow CLI with airflow-scheduler's environment

The compose file is the one source: each service's command, environment (env_file and
environment, interpolated from .env and the caller's environment as compose does), healthcheck,
depends_on conditions, restart policy and profiles. scripts/stack_map.py changes host names,
ports, container paths and the images' built-ins only; supervisord (scripts/supervise.py) runs the
programs, restarts them by their policy and keeps a log each. PostgreSQL's first start runs
initdb and deploy/postgres/init-databases.sh, as the postgres image does.

Environment (all optional):
    STACK_COMPOSE_FILE   compose files, ':'-separated, relative to the repository
                         (default docker-compose.yaml; later files override, as `-f a -f b`)
    STACK_ENV_FILE       the .env (default <repo>/.env; deploy/gen-secrets.sh writes it if missing)
    STACK_DIR            state: volumes, logs, supervisord, sessions (default <repo>/.local/stack)
    STACK_AIRFLOW_PORT, STACK_MLFLOW_PORT, STACK_POSTGRES_PORT, STACK_<SERVICE>_PORT
                         local ports (default: the published port, else a free one)
    COMPOSE_PROFILES     as for compose (`celery`), also read from .env
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts import compose_local as compose
from scripts.stack_map import HOST, POSTGRES_INITDB, Health, Mapper, pg_bin, run_as_postgres
from scripts.supervise import Program, Supervisor

ROOT = Path(__file__).resolve().parents[1]
GEN_SECRETS = ROOT / "deploy" / "gen-secrets.sh"
STATE_FILE = "stack.json"
DAG_ID = "sentiment_retrain"
API, MLFLOW, CLI_SERVICE = ("airflow-apiserver", 8080), ("mlflow", 5000), "airflow-scheduler"
UP = {"STARTING", "RUNNING", "BACKOFF"}
START_LIMIT = 3  # starts of one program while `up` waits before it counts as failing
_pg_bin, _run_as_postgres = pg_bin, run_as_postgres  # tests/support/servers.py shares them


class StackError(RuntimeError):
    """A start or stop that cannot go on; the message says why and what to do."""


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
    """One local stack: its state folder, .env, compose files and local ports."""

    state_dir: Path
    env_file: Path
    compose_files: list[Path]
    ports: dict[str, int] = field(default_factory=dict)
    health: dict[str, dict] = field(default_factory=dict)  # service -> its Health, as last started
    databases: list[str] = field(default_factory=list)  # postgres-image services: stopped last

    @classmethod
    def from_env(cls) -> Stack:
        state = Path(os.environ.get("STACK_DIR") or ROOT / ".local" / "stack").resolve()
        files = os.environ.get("STACK_COMPOSE_FILE") or "docker-compose.yaml"
        env_file = Path(os.environ.get("STACK_ENV_FILE") or ROOT / ".env").resolve()
        return cls.load(state, env_file, [ROOT / name for name in files.split(os.pathsep)])

    @classmethod
    def load(cls, state_dir: Path, env_file: Path, compose_files: list[Path] | None = None) -> Stack:
        path = Path(state_dir) / STATE_FILE
        saved = json.loads(path.read_text()) if path.exists() else {}
        files = compose_files or [Path(p) for p in saved.get("compose_files", [ROOT / "docker-compose.yaml"])]
        return cls(Path(state_dir), Path(env_file), files, saved.get("ports", {}), saved.get("health", {}),
                   saved.get("databases", []))  # fmt: skip

    def save(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        state = {"compose_files": [str(p) for p in self.compose_files], "ports": self.ports,
                 "health": self.health, "databases": self.databases}  # fmt: skip
        (self.state_dir / STATE_FILE).write_text(json.dumps(state, indent=1) + "\n")

    @property
    def logs(self) -> Path:
        return self.state_dir / "logs"

    @property
    def airflow_home(self) -> Path:
        return self.state_dir / "airflow"

    def volume(self, name: str) -> Path:
        return self.state_dir / "volumes" / name

    @property
    def supervisor(self) -> Supervisor:
        return Supervisor(self.state_dir, self.logs)

    def url(self, service: tuple[str, int]) -> str:
        return f"http://{HOST}:{self.ports[f'{service[0]}:{service[1]}']}"

    @property
    def airflow_url(self) -> str:
        return self.url(API)

    @property
    def mlflow_url(self) -> str:
        return self.url(MLFLOW)

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

    def spec(self, name: str) -> dict:
        """The program as supervisord starts it (argv, env, cwd)."""
        return json.loads(next(self.supervisor.specs.glob(f"{name}.*.json")).read_text())

    def healthy(self, name: str) -> bool:
        """One run of the service's compose healthcheck, here; True for a service without one."""
        health = Health(**self.health[name])
        if not health.argv:
            return True
        spec = self.spec(name)
        try:
            done = subprocess.run(health.argv, env=spec["env"], cwd=spec["cwd"], capture_output=True,
                                  timeout=health.timeout, check=False)  # fmt: skip
        except subprocess.TimeoutExpired:
            return False
        return done.returncode == 0

    # --- up ------------------------------------------------------------------------------------
    def up(self, timeout: float = 900) -> None:
        """Start every service once its dependencies meet their conditions; wait for health."""
        t0, deadline = time.monotonic(), time.monotonic() + timeout
        try:
            mapper = self.mapper()
            order = compose.start_order(mapper.services)
            programs = {name: mapper.program(name, 10 * (i + 1)) for i, name in enumerate(order)}
            self.health = {name: asdict(mapper.health(name)) for name in order}
            depends = {name: compose.dependencies(mapper.services, name) for name in order}
            self.databases = [name for name in order if mapper.image(name) == "postgres"]
            init_dirs = {name: mapper.mounts(name).get(POSTGRES_INITDB) for name in self.databases}
        except compose.ComposeError as exc:
            raise StackError(str(exc)) from None
        self.save()
        supervisor = self.supervisor
        supervisor.write(list(programs.values()))
        if supervisor.daemon() is None:
            if any(s.members() for s in supervisor.sessions()):
                raise StackError("processes of an earlier start still run: `make stack-down` first")
            supervisor.start_daemon()
        else:
            for name in supervisor.update():
                print(f"stack: {name}: configuration changed, stopped")
        try:
            self._start(programs, depends, init_dirs, deadline, t0)
            self._wait_for_dag(mapper.variables, deadline)
        except BaseException:
            print(f"stack: start failed; stopping everything (logs in {self.logs})", file=sys.stderr)
            self.down(quiet=True)
            raise
        print(f"stack: all healthy ({time.monotonic() - t0:.0f} s)")

    def _tail(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")[-3000:]

    def _start(
        self, programs: dict[str, Program], depends: dict, init_dirs: dict, deadline: float, t0: float
    ) -> None:
        supervisor = self.supervisor
        seen = len(supervisor.sessions())
        status: dict[str, str] = {}  # started | healthy | completed
        started_at: dict[str, float] = {}
        next_check: dict[str, float] = collections.defaultdict(float)
        met = {"service_started": {"started", "healthy", "completed"}, "service_healthy": {"healthy"},
               "service_completed_successfully": {"completed"}}  # fmt: skip
        while len([n for n in programs if status.get(n) in ("healthy", "completed")]) < len(programs):
            if time.monotonic() > deadline:
                raise StackError(f"timed out; not ready: {sorted(set(programs) - set(status))}")
            info = supervisor.info()
            starts = collections.Counter(s.name for s in supervisor.sessions()[seen:])
            for name, program in programs.items():
                state, health = info[name], Health(**self.health[name])
                if name not in status:
                    if all(status.get(dep) in met[cond] for dep, cond in depends[name].items()):
                        if state["statename"] not in UP:
                            if name in init_dirs:
                                self._init_cluster(program, init_dirs[name])
                            supervisor.rpc.startProcess(name, False)
                        status[name], started_at[name] = "started", time.monotonic()
                    continue
                if program.restart == "no" and not health.argv:  # a one-shot job: must succeed
                    if state["statename"] == "EXITED" and state["exitstatus"] == 0:
                        status[name] = "completed"
                    elif state["statename"] not in UP:
                        raise StackError(
                            f"{name} failed (exit status {state['exitstatus']}):\n{self._tail(name)}"
                        )
                elif starts[name] > START_LIMIT or state["statename"] == "FATAL":
                    raise StackError(f"{name} keeps exiting ({starts[name]} starts):\n{self._tail(name)}")
                elif status[name] == "started" and time.monotonic() >= next_check[name]:
                    # A check nothing waits for yet runs once every service is started.
                    waited_for = any(name in depends[n] for n in programs if n not in status)
                    if waited_for or len(status) == len(programs):
                        checked = time.monotonic()
                        if self.healthy(name):
                            status[name] = "healthy"
                            print(f"stack: {name} healthy ({time.monotonic() - t0:.0f} s)")
                        next_check[name] = time.monotonic() + max(2.0, 2 * (time.monotonic() - checked))
                    limit = health.start_period + health.interval * health.retries
                    if status[name] != "healthy" and time.monotonic() - started_at[name] > limit:
                        raise StackError(f"{name} is unhealthy after {limit:.0f} s:\n{self._tail(name)}")
            time.sleep(0.5)

    def _init_cluster(self, program: Program, init_dir: Path | None) -> None:
        """The postgres image's first start of an empty data folder: initdb with the superuser
        password, then the init scripts (with the service's environment), on a temporary server."""
        data, env = Path(program.env["PGDATA"]), program.env
        if (data / "PG_VERSION").exists():
            return
        user, run_as = program.user, (["runuser", "-u", program.user, "--"] if program.user else [])
        shutil.rmtree(data, ignore_errors=True)
        data.mkdir(parents=True, mode=0o700)
        pwfile = data.parent / f".{data.name}.pwfile"
        pwfile.write_text(env["POSTGRES_PASSWORD"] + "\n")
        if user:  # the server's user must reach its folder
            for folder in [data.parent, *data.parent.parents]:
                if folder.is_relative_to(self.state_dir):
                    folder.chmod(folder.stat().st_mode | 0o011)
                elif not folder.stat().st_mode & 0o001:
                    raise StackError(f"{user} cannot reach {data}: {folder} is closed to others")
            for path in (data, pwfile):
                shutil.chown(path, user)
        superuser = env.get("POSTGRES_USER", "postgres")
        options = f"-c listen_addresses={HOST} -c unix_socket_directories=''"
        log = self.logs / f"{program.name}-init.log"
        log.touch()
        if user:
            shutil.chown(log, user)
        steps = [[*run_as, pg_bin("initdb"), "-D", str(data), "-U", superuser, f"--pwfile={pwfile}",
                  "--auth=scram-sha-256", "-E", "UTF8", "--no-instructions"],
                 [*run_as, pg_bin("pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "start"]]  # fmt: skip
        scripts = sorted(init_dir.glob("*.sh")) if init_dir else []
        steps += [["bash", str(script)] for script in scripts]
        steps.append([*run_as, pg_bin("pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"])
        client = {**env, "PGHOST": HOST, "PGPASSWORD": env["POSTGRES_PASSWORD"], "POSTGRES_USER": superuser}
        try:
            for step in steps:
                done = subprocess.run(
                    step, env=client, cwd=program.cwd, capture_output=True, text=True, check=False
                )
                if done.returncode != 0:
                    raise StackError(
                        f"postgres first start: {' '.join(step[-3:])} failed:\n{done.stdout}{done.stderr}"
                    )
        except BaseException:
            subprocess.run(
                [*run_as, pg_bin("pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], capture_output=True
            )
            shutil.rmtree(data, ignore_errors=True)
            raise
        finally:
            pwfile.unlink(missing_ok=True)
        print(f"stack: postgres cluster initialised ({len(scripts)} init script(s))")

    def _wait_for_dag(self, variables: dict[str, str], deadline: float) -> None:
        """This project's own readiness: the admin login of .env works and the DAG is parsed."""
        login = {
            "username": variables["AIRFLOW_ADMIN_USERNAME"],
            "password": variables["AIRFLOW_ADMIN_PASSWORD"],
        }
        status, body = _http(f"{self.airflow_url}/auth/token", data=login)
        if status != 201:
            raise StackError(f"/auth/token refused the login of {self.env_file}: {status} {body[:300]!r}")
        token = json.loads(body)["access_token"]
        while _http(f"{self.airflow_url}/api/v2/dags/{DAG_ID}", token=token)[0] != 200:
            status, body = _http(f"{self.airflow_url}/api/v2/importErrors", token=token)
            errors = json.loads(body).get("import_errors", []) if status == 200 else []
            if errors:
                raise StackError(
                    f"{errors[0]['filename']} does not import:\n{errors[0]['stack_trace'][-3000:]}"
                )
            if time.monotonic() > deadline:
                raise StackError(f"timed out waiting for DAG {DAG_ID} to be parsed")
            time.sleep(1)

    # --- down and status -------------------------------------------------------------------------
    def down(self, quiet: bool = False) -> list[str]:
        """Stop supervisord's programs (reverse start order, each by its stop signal), supervisord,
        then whatever is left in any recorded session; returns what was running."""
        supervisor = self.supervisor
        running = []
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
        supervisor = self.supervisor
        if supervisor.daemon() is None:
            print(f"stack: not running (state in {self.state_dir})")
            return 1
        ok = True
        for name, info in supervisor.info().items():
            health = (
                "" if info["statename"] != "RUNNING" else ("healthy" if self.healthy(name) else "UNHEALTHY")
            )
            ok &= info["statename"] in ("RUNNING", "EXITED") and health != "UNHEALTHY"
            print(
                f"  {name:<22} {info['statename']:<8} {health:<9} {info['description']:<28} {self.logs / name}.log"
            )
        current = {info["pid"] for info in supervisor.info().values()}
        for session in supervisor.sessions():
            members = session.members()
            if members and session.pid not in current and session.name != "supervisord":
                print(
                    f"  left by an earlier {session.name} (session {session.pid}): {len(members)} processes"
                )
        print(self.summary())
        return 0 if ok else 1

    def summary(self) -> str:
        secrets = self.secrets()
        lines = [f"  {key.split(':')[0]:<22} {HOST}:{port}" for key, port in sorted(self.ports.items())]
        return "\n".join(["", *lines, "",
            f"  Airflow UI  {self.airflow_url}   login {secrets.get('AIRFLOW_ADMIN_USERNAME')} / "
            f"{secrets.get('AIRFLOW_ADMIN_PASSWORD')} (from {self.env_file})",
            f"  MLflow UI   {self.mlflow_url}",
            f"  Logs        {self.logs}    `make stack-down` stops all", ""])  # fmt: skip


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="docker-compose.yaml as local processes (module docstring).")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="start or update the stack; wait until it is healthy")
    sub.add_parser("down", help="stop everything the stack started, by pid")
    sub.add_parser("status", help="programs, health, logs and URLs")
    sub.add_parser("airflow", help="the airflow CLI against the stack").add_argument(
        "args", nargs=argparse.REMAINDER
    )
    args = parser.parse_args(list(argv) if argv is not None else None)
    stack = Stack.from_env()
    try:
        if args.command == "up":
            stack.up()
            print(stack.summary())
            return 0
        if args.command == "down":
            stack.down()
            return 0
        if args.command == "status":
            return stack.status()
        spec = stack.spec(CLI_SERVICE)
        return subprocess.run(
            ["airflow", *args.args], env=spec["env"], cwd=spec["cwd"], check=False
        ).returncode
    except (StackError, StopIteration) as exc:
        print(f"stack: {exc or 'the stack has not been started (`make stack`)'}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
