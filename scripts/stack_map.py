"""How ``make stack`` runs a compose service on this machine: the service's own command,
environment and healthcheck, with only four things changed.

* Host names: a compose service name becomes 127.0.0.1, and every server binds 127.0.0.1 instead
  of 0.0.0.0.
* Ports: each port a service listens on in its container gets a local port (free, or the
  published one, or ``STACK_<SERVICE>_PORT``), wherever a URL, option or setting names it.
* Container paths: a volume's mount point becomes a folder under the state folder (named volumes)
  or the bound host folder; files an image COPYs become the repository's files.
* The images' built-ins: what ``postgres``, ``redis`` and the Airflow image (``FROM
  apache/airflow``) do on their own: their entrypoints, data folders, default ports, users.

A variable compose does not give a container is therefore missing here too.
"""

from __future__ import annotations

import functools
import os
import pwd
import re
import shutil
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from scripts import compose_local as compose
from scripts.supervise import Program

HOST = "127.0.0.1"
LOOPBACK = {"localhost", "127.0.0.1", "0.0.0.0"}
PORT_VARIABLES = {"airflow-apiserver": "STACK_AIRFLOW_PORT"}  # else STACK_<SERVICE>_PORT
# The official Airflow image: its home, and Airflow's defaults under it, stated so that they
# follow the home's folders; the official image's entrypoint runs these directly, else airflow.
AIRFLOW_HOME = "/opt/airflow"
AIRFLOW_IMAGE_ENV = {
    "AIRFLOW_HOME": AIRFLOW_HOME,
    "AIRFLOW__CORE__DAGS_FOLDER": f"{AIRFLOW_HOME}/dags",
    "AIRFLOW__CORE__PLUGINS_FOLDER": f"{AIRFLOW_HOME}/plugins",
    "AIRFLOW__LOGGING__BASE_LOG_FOLDER": f"{AIRFLOW_HOME}/logs",
}
AIRFLOW_ENTRYPOINT_DIRECT = {"bash", "python"}
# Airflow's servers: the command, its port in the container (Airflow's default), the settings
# that set its address.
AIRFLOW_SERVERS = {
    "api-server": (8080, "AIRFLOW__API__HOST", "AIRFLOW__API__PORT"),
    "scheduler": (
        8974,
        "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_HOST",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT",
    ),
    "celery flower": (5555, "AIRFLOW__CELERY__FLOWER_HOST", "AIRFLOW__CELERY__FLOWER_PORT"),
}
# The postgres and redis images: default port, data folder, and (postgres) the init-script folder.
POSTGRES_PORT, PGDATA, POSTGRES_INITDB = 5432, "/var/lib/postgresql/data", "/docker-entrypoint-initdb.d"
REDIS_PORT, REDIS_DATA = 6379, "/data"
URL = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^@/\s]*@)?(?P<host>[\w.-]+)(?::(?P<port>\d+))?"
)
HOST_TOKEN = re.compile(r"(?P<host>[\w.-]+)(?::(?P<port>\d+|\*))?")


@dataclass
class Health:
    """A service's healthcheck, ready to run here, and compose's timing for it."""

    argv: list[str] | None
    start_period: float
    interval: float
    retries: int
    timeout: float


def run_as_postgres() -> str | None:
    """The user PostgreSQL runs as (the postgres image's): none needed unless we are root."""
    if os.geteuid() != 0:
        return None
    for user in ("postgres", "nobody"):
        try:
            pwd.getpwnam(user)
        except KeyError:
            continue
        return user
    raise compose.ComposeError("running as root and there is no 'postgres' or 'nobody' user for PostgreSQL")


def pg_bin(name: str) -> str:
    """A PostgreSQL program from PATH, else Debian's newest /usr/lib/postgresql/*/bin."""
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), key=lambda p: int(p.parts[4]))
    if not versions:
        raise compose.ComposeError(f"PostgreSQL's {name} is not installed (apt-get install postgresql)")
    return str(versions[-1])


@functools.cache
def hostname() -> str:
    """The host name Airflow records for this machine (its getfqdn), as HOSTNAME in a container."""
    name = socket.gethostname()
    try:
        infos = socket.getaddrinfo(name, None, 0, socket.SOCK_DGRAM, 0, socket.AI_CANONNAME)
    except OSError:
        return name
    return next((info[3] for info in infos if info[3]), name)


class Mapper:
    """Maps the active compose services to programs; allocates (and remembers) local ports."""

    def __init__(
        self,
        services: dict[str, dict[str, Any]],
        variables: Mapping[str, str],
        project_dir: Path,
        state_dir: Path,
        ports: dict[str, int],
        bin_dir: Path,
    ) -> None:
        self.services, self.variables = services, variables
        self.project_dir, self.state_dir, self.bin_dir = project_dir, state_dir, bin_dir
        self.ports = ports  # "service:container port" -> local port, kept across starts
        self._kinds: dict[str, str] = {}
        self._mounts: dict[str, dict[str, Path]] = {}

    # --- images and ports ------------------------------------------------------------------
    def image(self, name: str) -> str:
        """Which image's built-ins apply: postgres, redis, airflow or plain."""
        if name not in self._kinds:
            image = str(self.services[name].get("image", ""))
            if image.startswith(("postgres:", "redis:")):
                self._kinds[name] = image.split(":")[0]
            else:
                self._kinds[name] = "airflow" if "FROM apache/airflow:" in self.dockerfile(name) else "plain"
        return self._kinds[name]

    def dockerfile(self, name: str) -> str:
        build = self.services[name].get("build")
        if not build:
            return ""
        build = {"context": build} if isinstance(build, str) else build
        path = self.project_dir / build.get("context", ".") / build.get("dockerfile", "Dockerfile")
        return re.sub(r"\\\n", " ", path.read_text())

    def server_port(self, name: str) -> int | None:
        kind = self.image(name)
        if kind == "airflow":
            server = self._airflow_server(name)
            return server[0] if server else None
        return {"postgres": POSTGRES_PORT, "redis": REDIS_PORT}.get(kind)

    def _airflow_server(self, name: str) -> tuple[int, str, str] | None:
        command = compose.argv(self.services[name].get("command"))
        return next((v for k, v in AIRFLOW_SERVERS.items() if command[: len(k.split())] == k.split()), None)

    def own_ports(self, name: str) -> set[int]:
        return set(compose.published(self.services[name])) | {self.server_port(name)} - {None}  # type: ignore[operator]

    def port(self, name: str, container_port: int) -> int:
        """The local port standing in for ``container_port`` of service ``name``."""
        key = f"{name}:{container_port}"
        if key not in self.ports:
            variable = PORT_VARIABLES.get(name, f"STACK_{name.upper().replace('-', '_')}_PORT")
            wanted = os.environ.get(variable) or compose.published(self.services[name]).get(container_port)
            if wanted and not _port_free(int(wanted)):
                raise compose.ComposeError(f"port {wanted} ({name}) is in use on {HOST}; set {variable}")
            port = int(wanted) if wanted else _free_port()
            while not wanted and port in self.ports.values():
                port = _free_port()
            self.ports[key] = port
        return self.ports[key]

    def _loopback_port(self, name: str, port: int) -> int:
        """A port on the container's own loopback, or one published on the host's."""
        if port in self.own_ports(name):
            return self.port(name, port)
        for other, service in self.services.items():
            for target, host_port in compose.published(service).items():
                if host_port == port:
                    return self.port(other, target)
        raise compose.ComposeError(f"{name}: nothing listens on port {port}")

    # --- paths ---------------------------------------------------------------------------------
    def mounts(self, name: str) -> dict[str, Path]:
        """Container path -> local path for service ``name``, most specific first."""
        if name not in self._mounts:
            self._mounts[name] = self._find_mounts(name)
        return self._mounts[name]

    def _find_mounts(self, name: str) -> dict[str, Path]:
        kind = self.image(name)
        found: dict[str, Path] = {}
        if kind == "airflow":
            found[AIRFLOW_HOME] = self.state_dir / "airflow"
            for line in self.dockerfile(name).splitlines():
                words = [w for w in line.split() if not w.startswith("--")]
                if words[:1] == ["COPY"] and len(words) == 3 and words[2].startswith("/"):
                    found[words[2].rstrip("/")] = self.project_dir / words[1].rstrip("/")
        elif kind == "redis":
            found[REDIS_DATA] = self.state_dir / "containers" / name / "data"
        found.update(compose.volumes(self.services[name], self.project_dir, self.state_dir / "volumes"))
        return dict(sorted(found.items(), key=lambda item: -len(item[0])))

    def path(self, name: str, container_path: str) -> Path:
        for mount, local in self.mounts(name).items():
            if PurePosixPath(container_path).is_relative_to(mount):
                return local / PurePosixPath(container_path).relative_to(mount)
        raise compose.ComposeError(f"{name}: {container_path} is under no mount point")

    # --- strings ---------------------------------------------------------------------------------
    def remap(self, name: str, text: str, arg: bool = False) -> str:
        """``text`` with service hosts, ports and container paths made local (args: also bind
        addresses and host lists such as ``--allowed-hosts=mlflow,mlflow:*``)."""

        def url(match: re.Match[str]) -> str:
            host, port = match["host"], match["port"]
            prefix = f"{match['scheme']}{match['user'] or ''}{HOST}"
            if host in self.services:
                if port is None:
                    raise compose.ComposeError(f"{name}: {match[0]} names {host} without a port")
                return f"{prefix}:{self.port(host, int(port))}"
            if host in LOOPBACK and port:
                return f"{prefix}:{self._loopback_port(name, int(port))}"
            return match[0]

        text = URL.sub(url, text)
        for mount, local in self.mounts(name).items():
            text = re.sub(rf"(?<![\w./-]){re.escape(mount)}(?=$|[/:\s\"',;])", str(local), text)
        option, eq, value = text.partition("=")
        if text == "0.0.0.0" or not (arg and text.startswith("-") and eq):
            return HOST if text == "0.0.0.0" else text
        return option + eq + ",".join(self._host_token(item) for item in value.split(","))

    def _host_token(self, item: str) -> str:
        match = HOST_TOKEN.fullmatch(item)
        if item == "0.0.0.0":
            return HOST
        if not match or match["host"] not in self.services:
            return item
        port = match["port"]
        if port and port != "*":
            port = str(self.port(match["host"], int(port)))
        return f"{HOST}:{port}" if port else HOST

    def remap_argv(self, name: str, args: list[str]) -> list[str]:
        out = [self.remap(name, arg, arg=True) for arg in args]
        # The port options of the service's own servers: --port=N, --port N, -p N.
        for i, arg in enumerate(out):
            value = arg[7:] if arg.startswith("--port=") else out[i + 1] if arg in ("--port", "-p") else ""
            if value.isdigit() and int(value) in self.own_ports(name):
                local = str(self.port(name, int(value)))
                out[i : i + 1 + (arg in ("--port", "-p"))] = (
                    [f"--port={local}"] if "=" in arg else [arg, local]
                )
        return out

    # --- one service -----------------------------------------------------------------------------
    def environment(self, name: str) -> dict[str, str]:
        """The container's environment: the image's, then compose's; made local."""
        kind = self.image(name)
        env: dict[str, str] = {}
        if kind == "airflow":
            env.update(AIRFLOW_IMAGE_ENV)
            for line in self.dockerfile(name).splitlines():
                if line.startswith("ENV "):
                    key, _, value = line[4:].strip().partition("=")
                    env[key] = value
        elif kind == "postgres":
            env["PGDATA"] = PGDATA
        env.update(compose.environment(self.services[name], self.project_dir, self.variables))
        env = {key: self.remap(name, value) for key, value in env.items()}
        env.update(
            PATH=f"{self.bin_dir}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
            HOME=os.environ.get("HOME", "/root"),
            HOSTNAME=hostname(),
        )
        if "LANG" in os.environ:
            env["LANG"] = os.environ["LANG"]
        if kind == "postgres":
            env["PGPORT"] = str(self.port(name, POSTGRES_PORT))  # the server's and psql's default
        server = self._airflow_server(name) if kind == "airflow" else None
        if server:
            env.update({server[1]: HOST, server[2]: str(self.port(name, server[0]))})
        return env

    def program(self, name: str, priority: int) -> Program:
        service, kind = self.services[name], self.image(name)
        env = self.environment(name)
        command = compose.argv(service.get("command"))
        user = None
        if kind == "postgres":
            command, user = (
                [pg_bin("postgres"), "-c", f"listen_addresses={HOST}", "-c", "unix_socket_directories="],
                run_as_postgres(),
            )
        elif kind == "redis":
            data = self.path(name, REDIS_DATA)
            data.mkdir(parents=True, exist_ok=True)
            command = [
                "redis-server",
                "--bind",
                HOST,
                "--port",
                str(self.port(name, REDIS_PORT)),
                "--dir",
                str(data),
            ]
        elif kind == "airflow" and command[:1] and command[0] not in AIRFLOW_ENTRYPOINT_DIRECT:
            command = ["airflow", *command]
        if not command:
            raise compose.ComposeError(f"{name}: no command (the image's default is not known here)")
        argv = self.remap_argv(name, command)
        argv[0] = shutil.which(argv[0], path=env["PATH"]) or argv[0]
        # The image's working folder: the Airflow home, else a folder of the service's own.
        cwd = self.state_dir / "airflow" if kind == "airflow" else self.state_dir / "containers" / name
        cwd.mkdir(parents=True, exist_ok=True)
        return Program(
            name=name,
            argv=argv,
            env=env,
            cwd=str(cwd),
            user=user,
            restart=str(service.get("restart", "no")),
            # The postgres image stops on SIGINT (fast shutdown). The Airflow image's dumb-init
            # signals the whole group unless DUMB_INIT_SETSID=0.
            stop_signal=str(
                service.get("stop_signal") or ("INT" if kind == "postgres" else "TERM")
            ).removeprefix("SIG"),
            stop_grace=compose.seconds(service.get("stop_grace_period"), 10),
            stop_as_group=kind == "airflow" and env.get("DUMB_INIT_SETSID", "1") != "0",
            priority=priority,
        )

    def health(self, name: str) -> Health:
        service = self.services[name]
        check = service.get("healthcheck") or {}
        argv = compose.healthcheck(service)
        if argv:
            argv = self.remap_argv(name, argv)
            if self.image(name) == "redis" and argv[0] == "redis-cli":
                argv[1:1] = ["-p", str(self.port(name, REDIS_PORT))]
        return Health(
            argv,
            start_period=compose.seconds(check.get("start_period"), 0),
            interval=compose.seconds(check.get("interval"), 30),
            retries=int(check.get("retries", 3)),
            timeout=compose.seconds(check.get("timeout"), 30),
        )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
        return True
