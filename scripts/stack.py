#!/usr/bin/env python3
"""`make stack` / `make stack-down`: docker-compose.yaml's topology as local processes, no Docker.

    scripts/stack.py up        PostgreSQL, MLflow server, airflow-init, api-server, scheduler,
                               dag-processor, triggerer (LocalExecutor); waits for health, prints
                               the URLs and the login
    scripts/stack.py down      stops exactly the processes `up` started (pids in the state file)
    scripts/stack.py status    what runs, where
    scripts/stack.py airflow ARGS...   the airflow CLI against the stack (e.g. `dags list`)

Everything binds 127.0.0.1. Configuration is deploy/airflow.env, the file compose gives every
Airflow service, with only its compose host names/ports and its "container path" lines rewritten
for this machine, plus the secrets of .env (written by deploy/gen-secrets.sh when missing). The
PostgreSQL cluster is initialised with deploy/postgres/init-databases.sh and Airflow with
deploy/airflow/airflow-init.sh, as in compose. Data survives `down` (like `docker compose down`);
`make clean` removes it.

Environment (all optional):
    STACK_AIRFLOW_PORT   Airflow UI/API port (default 8080)
    STACK_MLFLOW_PORT    MLflow UI/API port (default 5000)
    STACK_POSTGRES_PORT  PostgreSQL port (default: a free port, printed)
    STACK_DIR            state: cluster, artifacts, logs, pids (default <repo>/.local/stack)
    STACK_ENV_FILE       the secrets file (default <repo>/.env)

Only the standard library: importable by the tests, which drive the same code (scripts.stack).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
AIRFLOW_ENV_FILE = ROOT / "deploy" / "airflow.env"
GEN_SECRETS = ROOT / "deploy" / "gen-secrets.sh"
POSTGRES_INIT = ROOT / "deploy" / "postgres" / "init-databases.sh"
AIRFLOW_INIT = ROOT / "deploy" / "airflow" / "airflow-init.sh"
DAG_ID = "sentiment_retrain"
HOST = "127.0.0.1"
STATE_FILE = "stack.json"
CONTAINER_PATH_MARK = "# container path"

# .env keys every start needs (deploy/gen-secrets.sh writes them all).
REQUIRED_SECRETS = (
    "POSTGRES_PASSWORD",
    "AIRFLOW_DB_PASSWORD",
    "MLFLOW_DB_PASSWORD",
    "AIRFLOW_ADMIN_USERNAME",
    "AIRFLOW_ADMIN_PASSWORD",
    "AIRFLOW__CORE__FERNET_KEY",
    "AIRFLOW__API_AUTH__JWT_SECRET",
    "AIRFLOW__API__SECRET_KEY",
    "SENTIMENT_DATA_DIR",
)
# Secrets passed to Airflow under their own names (compose's x-airflow-common environment).
AIRFLOW_SECRETS = ("AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY")
JWT_SECRET = "AIRFLOW__API_AUTH__JWT_SECRET"
# As in compose: the task-token signing secret only where tokens are checked (API server) or
# signed (the scheduler's executor); the DAG processor and triggerer use an in-process API.
JWT_SECRET_COMPONENTS = ("api-server", "scheduler")
# Inherited variables that would silently reconfigure a component; compose's containers never see
# the host's environment, so neither do the stack's processes.
FOREIGN_PREFIXES = ("AIRFLOW", "MLFLOW_", "SENTIMENT_", "PG", "_AIRFLOW")
FOREIGN_NAMES = ("REVIEWS_PATH", "PYTHONPATH", "TF_CPP_MIN_LOG_LEVEL")


class StackError(RuntimeError):
    """A start or stop that cannot go on; the message says why and what to do."""


# --- small helpers -----------------------------------------------------------------------------
def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        # As the servers do: a port in TIME_WAIT from a previous run is free to them.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
        return True


def read_env_file(path: Path) -> tuple[dict[str, str], set[str]]:
    """KEY=VALUE lines of an env file, verbatim, and the keys marked ``# container path``.

    The subset that compose, python-dotenv and this parser read alike (deploy/airflow.env's header):
    whole-line comments, no quotes, no interpolation. A key is a container path when the comment
    line right above it starts with ``# container path``.
    """
    values: dict[str, str] = {}
    container_paths: set[str] = set()
    marked = False
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line:
            marked = False
            continue
        if line.startswith("#"):
            marked = line.startswith(CONTAINER_PATH_MARK)
            continue
        key, sep, value = raw.partition("=")
        if not sep or not key.isidentifier():
            raise StackError(f"{path}:{number}: not a KEY=VALUE line: {raw!r}")
        values[key] = value
        if marked:
            container_paths.add(key)
        marked = False
    return values, container_paths


def _proc_stat(pid: int) -> list[str] | None:
    """Fields 3.. of /proc/<pid>/stat (state, ppid, pgrp, ...), or None if there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()


def _start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (tells a reused pid from ours)."""
    fields = _proc_stat(pid)
    return int(fields[19]) if fields else None


def _session_members(sid: int) -> list[int]:
    """Live (not zombie) processes of a session.

    A component starts in a session of its own and everything it starts stays in it, even what
    moves to another process group (Airflow runs each task in its own group). A zombie is finished
    but answers kill(0) until its parent reaps it, which `scripts/stack.py down` cannot do.
    """
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _proc_stat(int(entry.name))
            if fields and fields[3] == str(sid) and fields[0] != "Z":
                members.append(int(entry.name))
    return members


def _run_as_postgres() -> list[str]:
    """PostgreSQL refuses to run as root: as root, run its programs as ``postgres`` (or nobody)."""
    if os.geteuid() != 0:
        return []
    for user in ("postgres", "nobody"):
        try:
            pwd.getpwnam(user)
        except KeyError:
            continue
        return ["runuser", "-u", user, "--"]
    raise StackError("running as root and there is no 'postgres' or 'nobody' user to run PostgreSQL")


def _pg_bin(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), key=lambda p: int(p.parts[4]))
    if not versions:
        raise StackError(f"PostgreSQL's {name} is not installed (apt-get install postgresql)")
    return str(versions[-1])


def _http(
    url: str, *, data: dict | None = None, token: str | None = None, timeout: float = 5
) -> tuple[int, bytes]:
    """(status, body) of a GET, or a JSON POST when ``data`` is given; (0, b"") when unreachable."""
    headers = {"Accept": "application/json"}
    body = None
    if data is not None:
        body = json.dumps(data).encode()
        headers["Content-Type"] = "application/json"
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=body, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (OSError, ValueError):
        return 0, b""


def _tail(path: Path, chars: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


# --- processes ---------------------------------------------------------------------------------
@dataclass
class Proc:
    """A process the stack started: its pid, start time (to tell a reused pid), and log file."""

    pid: int
    ticks: int | None
    log: str
    session: bool = True  # leads a session of its own: stopping it stops the whole session

    def alive(self) -> bool:
        """The recorded process itself still runs (same pid and start time, not a zombie)."""
        fields = _proc_stat(self.pid)
        return fields is not None and self.ticks == int(fields[19]) and fields[0] != "Z"

    def members(self) -> list[int]:
        """Our processes left: the process and, for a session leader, its whole session.

        Once the leader is gone the session's other members are still ours: Linux hands out no
        pid that is in use as a session id.
        """
        if not self.session:
            return [self.pid] if self.alive() else []
        fields = _proc_stat(self.pid)
        if fields is not None and self.ticks != int(fields[19]):
            return []  # the pid is another process's now, so the session is long gone
        return _session_members(self.pid)

    def send(self, sig: signal.Signals = signal.SIGTERM) -> bool:
        """Send ``sig`` to each of our processes left; False if there were none."""
        members = self.members()
        for pid in members:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        return bool(members)

    def wait(self, timeout: float) -> bool:
        """Wait until none of our processes is left; True if they went in time."""
        deadline = time.monotonic() + timeout
        while True:
            _reap(self.pid)
            if not self.members():
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.2)

    def stop(self, timeout: float = 30, sig: signal.Signals = signal.SIGTERM) -> None:
        """Signal, wait up to ``timeout``, then SIGKILL what is left."""
        if self.send(sig) and not self.wait(timeout):
            self.send(signal.SIGKILL)
            self.wait(10)


def component_env(airflow_env: dict[str, str], component: str) -> dict[str, str]:
    """``airflow_env`` for one component: without the JWT secret unless it needs it."""
    if component in JWT_SECRET_COMPONENTS:
        return airflow_env
    return {key: value for key, value in airflow_env.items() if key != JWT_SECRET}


def _reap(pid: int) -> None:
    """Collect our own exited child, so that it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _spawn(argv: list[str], env: dict[str, str], log: Path, cwd: Path = ROOT) -> Proc:
    """Start a long-running component detached in its own session, output to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        out.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(argv)}\n".encode())
        out.flush()
        process = subprocess.Popen(
            argv,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Proc(process.pid, _start_ticks(process.pid), str(log))


# --- the stack ---------------------------------------------------------------------------------
@dataclass
class Stack:
    """The local stack: where its state lives, its ports, and the processes it started."""

    state_dir: Path
    env_file: Path
    ports: dict[str, int] = field(default_factory=dict)
    procs: dict[str, Proc] = field(default_factory=dict)
    started_at: float | None = None
    bin_dir: Path = field(default_factory=lambda: Path(sys.executable).parent)

    # --- paths and state ---------------------------------------------------------------------
    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Stack:
        """The stack named by STACK_DIR / STACK_ENV_FILE, with its saved state if any."""
        env = dict(os.environ if env is None else env)
        state_dir = Path(env.get("STACK_DIR") or ROOT / ".local" / "stack").resolve()
        env_file = Path(env.get("STACK_ENV_FILE") or ROOT / ".env").resolve()
        return cls.load(state_dir, env_file)

    @classmethod
    def load(cls, state_dir: Path, env_file: Path) -> Stack:
        stack = cls(state_dir=Path(state_dir), env_file=Path(env_file))
        path = stack.state_dir / STATE_FILE
        if path.exists():
            saved = json.loads(path.read_text())
            stack.ports = {k: int(v) for k, v in saved.get("ports", {}).items()}
            stack.procs = {k: Proc(**v) for k, v in saved.get("processes", {}).items()}
            stack.started_at = saved.get("started_at")
        return stack

    def save(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        state = {
            "started_at": self.started_at,
            "env_file": str(self.env_file),
            "ports": self.ports,
            "urls": self.urls() if self.ports else {},
            "processes": {k: vars(p) for k, p in self.procs.items()},
        }
        tmp = self.state_dir / f".{STATE_FILE}.tmp"
        tmp.write_text(json.dumps(state, indent=2) + "\n")
        tmp.replace(self.state_dir / STATE_FILE)

    @property
    def logs(self) -> Path:
        return self.state_dir / "logs"

    @property
    def pg_root(self) -> Path:
        return self.state_dir / "postgres"

    @property
    def airflow_home(self) -> Path:
        return self.state_dir / "airflow"

    def urls(self) -> dict[str, str]:
        return {
            "airflow": f"http://{HOST}:{self.ports['airflow']}",
            "mlflow": f"http://{HOST}:{self.ports['mlflow']}",
            "postgres": f"postgresql://{HOST}:{self.ports['postgres']}",
        }

    @property
    def airflow_url(self) -> str:
        return self.urls()["airflow"]

    @property
    def mlflow_url(self) -> str:
        return self.urls()["mlflow"]

    # --- configuration -----------------------------------------------------------------------
    def secrets(self) -> dict[str, str]:
        """The .env values, written by deploy/gen-secrets.sh first if the file is missing."""
        if not self.env_file.exists():
            done = subprocess.run(
                ["bash", str(GEN_SECRETS), "--output", str(self.env_file)],
                env={**os.environ, "PYTHON": sys.executable},
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode != 0:
                raise StackError(f"deploy/gen-secrets.sh failed:\n{done.stderr}")
            print(done.stdout.strip() or f"stack: wrote {self.env_file}")
        values, _ = read_env_file(self.env_file)
        missing = [key for key in REQUIRED_SECRETS if not values.get(key)]
        if missing:
            raise StackError(
                f"{self.env_file} leaves {', '.join(missing)} empty; run `deploy/gen-secrets.sh --force`"
            )
        return values

    def _service_addresses(self) -> dict[str, int]:
        """Compose service name -> the local port of the same service."""
        return {
            "postgres": self.ports["postgres"],
            "mlflow": self.ports["mlflow"],
            "airflow-apiserver": self.ports["airflow"],
            "redis": self.ports.get("redis", 6379),
        }

    def _mounts(self, secrets: dict[str, str]) -> dict[str, Path]:
        """Compose's mount points -> the local folders standing in for those volumes."""
        return {
            "/opt/airflow/data": Path(secrets["SENTIMENT_DATA_DIR"]),
            "/opt/airflow/artifacts": self.state_dir / "artifacts",
            "/opt/airflow/auth": self.airflow_home / "auth",
            "/opt/airflow/logs": self.airflow_home / "logs",
        }

    def _localise_url(self, key: str, value: str) -> str:
        url = urlsplit(value)
        services = self._service_addresses()
        published = {5000: self.ports["mlflow"], 8080: self.ports["airflow"]}
        if url.hostname in services:
            port = services[url.hostname]
        elif url.hostname in (HOST, "localhost") and url.port in published:
            port = published[url.port]  # opened by the browser: the host-published port
        else:
            raise StackError(f"deploy/airflow.env: {key} names {url.hostname}, unknown to the local stack")
        userinfo = url.netloc.rpartition("@")[0]
        netloc = f"{userinfo}@{HOST}:{port}" if userinfo else f"{HOST}:{port}"
        return urlunsplit(url._replace(netloc=netloc))

    def airflow_env(
        self, secrets: dict[str, str] | None = None, overrides: dict[str, str] | None = None
    ) -> dict[str, str]:
        """The environment of every Airflow process: deploy/airflow.env, localised, plus .env.

        Args:
            secrets: the .env values (read when omitted).
            overrides: set last, e.g. the executor for a Celery scheduler and its workers.
        """
        secrets = self.secrets() if secrets is None else secrets
        shared, container_paths = read_env_file(AIRFLOW_ENV_FILE)
        mounts = self._mounts(secrets)
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(FOREIGN_PREFIXES) and k not in FOREIGN_NAMES
        }
        for key, value in shared.items():
            if key in container_paths:
                path = PurePosixPath(value)
                mount = next((m for m in mounts if path.is_relative_to(m)), None)
                if mount is None:
                    raise StackError(f"deploy/airflow.env: {key}={value} is under no known mount point")
                value = str(mounts[mount] / path.relative_to(mount))
            elif "/opt/airflow" in value:
                raise StackError(f"deploy/airflow.env: {key} looks like a container path but is not marked")
            elif "://" in value:
                value = self._localise_url(key, value)
            env[key] = value
        env.update({key: secrets[key] for key in AIRFLOW_SECRETS})
        env.update(
            {
                # What the image provides in compose: AIRFLOW_HOME with the bundle's folders, and
                # the stage package on PYTHONPATH.
                "AIRFLOW_HOME": str(self.airflow_home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
                "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
                "PYTHONPATH": str(ROOT / "include"),
                "PATH": f"{self.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
                # What compose sets from .env.
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{secrets['AIRFLOW_ADMIN_USERNAME']}:admin",
                "PGPASSWORD": secrets["AIRFLOW_DB_PASSWORD"],
                # Ports compose keeps inside each container: here, loopback and free.
                "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_HOST": HOST,
                "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(self.ports["scheduler-health"]),
            }
        )
        env.update(overrides or {})
        return env

    # --- up ------------------------------------------------------------------------------------
    def running(self) -> dict[str, Proc]:
        return {name: proc for name, proc in self.procs.items() if proc.alive()}

    def _choose_ports(self, env: dict[str, str]) -> None:
        wanted = {
            "airflow": int(env.get("STACK_AIRFLOW_PORT") or 8080),
            "mlflow": int(env.get("STACK_MLFLOW_PORT") or 5000),
            "postgres": int(env.get("STACK_POSTGRES_PORT") or 0),
            "scheduler-health": 0,
        }
        taken = set()
        for name, port in wanted.items():
            if port == 0:
                port = free_port()
                while port in taken:
                    port = free_port()
            elif not _port_is_free(port):
                variable = f"STACK_{name.upper()}_PORT"
                raise StackError(f"port {port} ({name}) is in use on {HOST}; set {variable} to another port")
            taken.add(port)
            self.ports[name] = port

    def up(self, env: dict[str, str] | None = None, timeout: float = 600) -> None:
        """Start every component in compose's order, each once the ones it depends on are healthy."""
        env = dict(os.environ if env is None else env)
        if self.running():
            raise StackError(
                f"the stack in {self.state_dir} is already running ({', '.join(self.running())}); "
                "`make stack-down` first"
            )
        secrets = self.secrets()
        data_dir = Path(secrets["SENTIMENT_DATA_DIR"])
        if not data_dir.is_dir():
            print(f"stack: WARNING: SENTIMENT_DATA_DIR={data_dir} (from {self.env_file}) is not a folder")
        self.procs = {}
        self._choose_ports(env)
        self.started_at = time.time()
        self.save()
        deadline = time.monotonic() + timeout
        try:
            self._up(secrets, deadline)
        except BaseException:
            print(f"stack: start failed; stopping what was started (logs in {self.logs})", file=sys.stderr)
            self.down(quiet=True)
            raise

    def _remaining(self, deadline: float) -> float:
        return max(1.0, deadline - time.monotonic())

    def _up(self, secrets: dict[str, str], deadline: float) -> None:
        t0 = time.monotonic()
        self._start_postgres(secrets, deadline)
        print(f"stack: postgres ready on {HOST}:{self.ports['postgres']} ({time.monotonic() - t0:.0f} s)")

        self._start_mlflow(secrets)
        airflow = self.airflow_env(secrets)
        self._airflow_init(component_env(airflow, "airflow-init"), secrets)
        print(f"stack: airflow-init done ({time.monotonic() - t0:.0f} s)")

        # The DAG processor needs only the database; start it while the API server boots.
        self.start(
            "dag-processor", [self._airflow_bin, "dag-processor"], component_env(airflow, "dag-processor")
        )
        self.start("api-server", self.api_server_argv(), component_env(airflow, "api-server"))
        self.wait("api-server", self.api_server_healthy, deadline)
        self.wait("mlflow", self.mlflow_healthy, deadline)
        print(f"stack: api-server and mlflow healthy ({time.monotonic() - t0:.0f} s)")

        # Task processes (LocalExecutor: children of the scheduler) need the Execution API and MLflow.
        self.start("scheduler", self.scheduler_argv(), component_env(airflow, "scheduler"))
        self.start(
            "triggerer",
            [self._airflow_bin, "triggerer", "--skip-serve-logs"],
            component_env(airflow, "triggerer"),
        )
        self.wait("scheduler", self.scheduler_healthy, deadline)
        self.wait("the dag-processor and triggerer heartbeats", self.components_healthy, deadline)
        token = self.token(secrets)
        self.wait(f"DAG {DAG_ID} to be parsed", lambda: self._dag_listed(token), deadline)
        print(f"stack: all healthy ({time.monotonic() - t0:.0f} s)")

    @property
    def _airflow_bin(self) -> str:
        return str(self.bin_dir / "airflow")

    def api_server_argv(self) -> list[str]:
        return [self._airflow_bin, "api-server", "--host", HOST, "--port", str(self.ports["airflow"])]

    def scheduler_argv(self) -> list[str]:
        # The log server binds every interface and cannot be told otherwise; every component
        # shares $AIRFLOW_HOME/logs here, so the API server reads task logs from disk instead.
        return [self._airflow_bin, "scheduler", "--skip-serve-logs"]

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> Proc:
        """Start a component, record its pid in the state file."""
        proc = _spawn(argv, env, self.logs / f"{name}.log")
        self.procs[name] = proc
        self.save()
        return proc

    def stop(self, name: str, timeout: float = 30) -> None:
        """Stop one component by its recorded pid and forget it."""
        proc = self.procs.get(name)
        if proc is not None:
            if name == "postgres":
                proc.stop(timeout, signal.SIGINT)  # fast shutdown
            else:
                proc.stop(timeout)
            del self.procs[name]
            self.save()

    def wait(self, what: str, check: Callable[[], bool], deadline: float) -> None:
        """Poll ``check`` until true; fail early, with the log, if a component has died."""
        while time.monotonic() < deadline:
            for name, proc in self.procs.items():
                if not proc.alive():
                    raise StackError(f"{name} exited while waiting for {what}:\n{_tail(Path(proc.log))}")
            if check():
                return
            time.sleep(1)
        raise StackError(f"timed out waiting for {what} (logs in {self.logs})")

    # --- PostgreSQL ----------------------------------------------------------------------------
    def _start_postgres(self, secrets: dict[str, str], deadline: float) -> None:
        data = self.pg_root / "data"
        fresh = not (data / "PG_VERSION").exists()
        run_as = _run_as_postgres()
        self.pg_root.mkdir(parents=True, exist_ok=True)
        if run_as:
            # The server's user must reach its folder: open the stack's own folders to it, and
            # say so if a parent outside them is closed.
            for folder in (self.state_dir, self.pg_root):
                folder.chmod(folder.stat().st_mode | 0o011)
            closed = [p for p in self.state_dir.parents if not p.stat().st_mode & 0o001]
            if closed:
                raise StackError(f"{run_as[2]} cannot reach {self.pg_root}: {closed[0]} is closed to others")
            shutil.chown(self.pg_root, run_as[2])
        if fresh:
            shutil.rmtree(data, ignore_errors=True)
            pwfile = self.pg_root / ".pwfile"
            pwfile.write_text(secrets["POSTGRES_PASSWORD"] + "\n")
            pwfile.chmod(0o600)
            if run_as:
                shutil.chown(pwfile, run_as[2])
            try:
                self._pg(
                    [_pg_bin("initdb"), "-D", str(data), "-U", "postgres", f"--pwfile={pwfile}",
                     "--auth-host=scram-sha-256", "--auth-local=scram-sha-256", "-E", "UTF8",
                     "--no-instructions"],
                )  # fmt: skip
            finally:
                pwfile.unlink(missing_ok=True)
        log = self.logs / "postgres.log"
        self.logs.mkdir(parents=True, exist_ok=True)
        log.touch()
        if run_as:
            shutil.chown(log, run_as[2])
        # TCP on loopback only, no Unix socket: every client, the init script included, logs in
        # over 127.0.0.1 with a password, as in compose.
        options = f"-c listen_addresses={HOST} -p {self.ports['postgres']} -c unix_socket_directories=''"
        self._pg(
            [_pg_bin("pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "-t",
             str(int(self._remaining(deadline))), "start"],
        )  # fmt: skip
        pid = int((data / "postmaster.pid").read_text().splitlines()[0])
        self.procs["postgres"] = Proc(pid, _start_ticks(pid), str(log), session=False)
        self.save()
        if fresh:
            done = subprocess.run(
                ["bash", str(POSTGRES_INIT)],
                env={
                    **os.environ,
                    "PGHOST": HOST,
                    "PGPORT": str(self.ports["postgres"]),
                    "PGPASSWORD": secrets["POSTGRES_PASSWORD"],
                    "POSTGRES_USER": "postgres",
                    "POSTGRES_DB": "postgres",
                    "AIRFLOW_DB_PASSWORD": secrets["AIRFLOW_DB_PASSWORD"],
                    "MLFLOW_DB_PASSWORD": secrets["MLFLOW_DB_PASSWORD"],
                },
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode != 0:
                raise StackError(f"deploy/postgres/init-databases.sh failed:\n{done.stdout}{done.stderr}")
        # As compose's health check: each application role logs in with its password from .env.
        for role, key in (("airflow", "AIRFLOW_DB_PASSWORD"), ("mlflow", "MLFLOW_DB_PASSWORD")):
            done = subprocess.run(
                ["psql", "-h", HOST, "-p", str(self.ports["postgres"]), "-U", role, "-d", role, "-tAc",
                 "SELECT 1", "--no-psqlrc"],
                env={**os.environ, "PGPASSWORD": secrets[key], "PGCONNECT_TIMEOUT": "10"},
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            if done.returncode != 0:
                raise StackError(
                    f"PostgreSQL rejects the {role} role's password from {self.env_file}: "
                    f"{done.stderr.strip()}\n(the cluster in {self.pg_root} was initialised with other "
                    "passwords: ALTER ROLE, or `make clean` to start afresh)"
                )

    def _pg(self, argv: list[str]) -> None:
        done = subprocess.run([*_run_as_postgres(), *argv], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise StackError(f"{Path(argv[0]).name} failed:\n{done.stdout}{done.stderr}")

    # --- MLflow --------------------------------------------------------------------------------
    def _start_mlflow(self, secrets: dict[str, str]) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN_PREFIXES)}
        env["PGPASSWORD"] = secrets["MLFLOW_DB_PASSWORD"]
        port = self.ports["mlflow"]
        self.start(
            "mlflow",
            [str(self.bin_dir / "mlflow"), "server", f"--host={HOST}", f"--port={port}", "--workers=2",
             f"--backend-store-uri=postgresql://mlflow@{HOST}:{self.ports['postgres']}/mlflow",
             "--serve-artifacts", f"--artifacts-destination={self.state_dir / 'mlartifacts'}",
             f"--allowed-hosts=localhost,localhost:{port},{HOST},{HOST}:{port}"],
            env,
        )  # fmt: skip

    def mlflow_healthy(self) -> bool:
        return _http(f"{self.mlflow_url}/health")[0] == 200

    # --- Airflow -------------------------------------------------------------------------------
    def _airflow_init(self, airflow: dict[str, str], secrets: dict[str, str]) -> None:
        log = self.logs / "airflow-init.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        env = {
            **airflow,
            "AIRFLOW_ADMIN_USERNAME": secrets["AIRFLOW_ADMIN_USERNAME"],
            "AIRFLOW_ADMIN_PASSWORD": secrets["AIRFLOW_ADMIN_PASSWORD"],
        }
        with open(log, "ab") as out:
            done = subprocess.run(
                ["bash", str(AIRFLOW_INIT)],
                env=env,
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                check=False,
            )
        if done.returncode != 0:
            raise StackError(f"deploy/airflow/airflow-init.sh failed:\n{_tail(log)}")

    def api_server_healthy(self) -> bool:
        return _http(f"{self.airflow_url}/api/v2/monitor/health")[0] == 200

    def scheduler_healthy(self) -> bool:
        return _http(f"http://{HOST}:{self.ports['scheduler-health']}/health")[0] == 200

    def health(self) -> dict:
        status, body = _http(f"{self.airflow_url}/api/v2/monitor/health")
        return json.loads(body) if status == 200 else {}

    def components_healthy(self) -> bool:
        health = self.health()
        parts = ("metadatabase", "scheduler", "triggerer", "dag_processor")
        return all((health.get(part) or {}).get("status") == "healthy" for part in parts)

    def token(self, secrets: dict[str, str] | None = None) -> str:
        """A JWT for the admin login of .env, from the API server's /auth/token."""
        secrets = self.secrets() if secrets is None else secrets
        login = {"username": secrets["AIRFLOW_ADMIN_USERNAME"], "password": secrets["AIRFLOW_ADMIN_PASSWORD"]}
        status, body = _http(f"{self.airflow_url}/auth/token", data=login)
        if status != 201:
            raise StackError(f"/auth/token refused the login of {self.env_file}: {status} {body[:300]!r}")
        return json.loads(body)["access_token"]

    def _dag_listed(self, token: str) -> bool:
        """True once the DAG is in the metadata DB; a DAG file that fails to import stops the wait."""
        if _http(f"{self.airflow_url}/api/v2/dags/{DAG_ID}", token=token)[0] == 200:
            return True
        status, body = _http(f"{self.airflow_url}/api/v2/importErrors", token=token)
        errors = json.loads(body).get("import_errors", []) if status == 200 else []
        if errors:
            raise StackError(f"{errors[0]['filename']} does not import:\n{errors[0]['stack_trace'][-3000:]}")
        return False

    # --- down ----------------------------------------------------------------------------------
    def down(self, quiet: bool = False, timeout: float = 20) -> list[str]:
        """Stop the recorded processes; returns the names of those that were running.

        Every process of every component but PostgreSQL gets SIGTERM at once and ``timeout`` to
        exit, then SIGKILL (as compose's stop grace period: a training task does not stop on
        SIGTERM, and the scheduler waits for its tasks); then PostgreSQL gets its fast shutdown.
        """
        running = [name for name, proc in self.procs.items() if proc.alive()]
        for phase in ([n for n in self.procs if n != "postgres"], [n for n in self.procs if n == "postgres"]):
            signalled = []
            for name in phase:
                proc = self.procs[name]
                if not quiet and name in running:
                    print(f"stack: stopping {name} (pid {proc.pid})")
                if proc.send(signal.SIGINT if name == "postgres" else signal.SIGTERM):
                    signalled.append(name)
            deadline = time.monotonic() + timeout
            for name in signalled:
                proc = self.procs[name]
                if not proc.wait(max(0.0, deadline - time.monotonic())):
                    print(f"stack: {name} (pid {proc.pid}) did not stop in time: SIGKILL", file=sys.stderr)
                    proc.send(signal.SIGKILL)
                    proc.wait(10)
            for name in phase:
                del self.procs[name]
            self.save()
        return running

    # --- report --------------------------------------------------------------------------------
    def summary(self, secrets: dict[str, str]) -> str:
        urls = self.urls()
        return "\n".join(
            [
                "",
                f"  Airflow UI/API  {urls['airflow']}    login: {secrets['AIRFLOW_ADMIN_USERNAME']} / "
                f"{secrets['AIRFLOW_ADMIN_PASSWORD']}  (from {self.env_file})",
                f"  MLflow UI/API   {urls['mlflow']}",
                f"  PostgreSQL      {HOST}:{self.ports['postgres']}  (roles airflow, mlflow)",
                "  Executor        LocalExecutor (tasks run under the scheduler)",
                f"  State and logs  {self.state_dir}  (pids: {self.state_dir / STATE_FILE})",
                "",
                f"  Next: open {urls['airflow']}/dags/{DAG_ID}, press Trigger; `make stack-down` stops all.",
                "",
            ]
        )


def _print_status(stack: Stack) -> int:
    if not stack.procs:
        print(f"stack: nothing recorded in {stack.state_dir / STATE_FILE}")
        return 1
    for name, proc in stack.procs.items():
        print(f"  {name:<14} pid {proc.pid:<8} {'running' if proc.alive() else 'NOT RUNNING'}  {proc.log}")
    if stack.ports:
        for name, url in stack.urls().items():
            print(f"  {name:<14} {url}")
    return 0 if all(p.alive() for p in stack.procs.values()) else 1


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="The compose topology as local processes on 127.0.0.1 (see the module docstring)."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="start the stack and wait until it is healthy")
    sub.add_parser("down", help="stop the processes `up` started, by pid")
    sub.add_parser("status", help="show the recorded processes and URLs")
    cli = sub.add_parser("airflow", help="run the airflow CLI against the stack")
    cli.add_argument("args", nargs=argparse.REMAINDER)
    args = parser.parse_args(list(argv) if argv is not None else None)

    stack = Stack.from_env()
    try:
        if args.command == "up":
            if stack.procs and len(stack.running()) == len(stack.procs):
                print(
                    f"stack: already running (`make stack-down` stops it)\n{stack.summary(stack.secrets())}"
                )
                return 0
            stack.up()
            print(stack.summary(stack.secrets()))
            return 0
        if args.command == "down":
            stopped = stack.down()
            print(f"stack: stopped {len(stopped)} processes" if stopped else "stack: nothing was running")
            return 0
        if args.command == "status":
            return _print_status(stack)
        if not stack.ports:
            raise StackError("the stack has not been started (`make stack`)")
        env = stack.airflow_env()
        return subprocess.run([stack._airflow_bin, *args.args], env=env, cwd=ROOT, check=False).returncode
    except StackError as exc:
        print(f"stack: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
