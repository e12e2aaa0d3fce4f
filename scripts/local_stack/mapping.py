"""How ``make stack`` runs a compose service on this machine: the service's own command,
environment and healthcheck, with only four things changed.

* Host names: a compose service's name becomes 127.0.0.1, and servers bind 127.0.0.1, not 0.0.0.0.
* Ports: each port a service listens on in its container gets a local port (``STACK_<SERVICE>_PORT``,
  else the published port, else a free one) wherever a URL, a port option or a setting names it.
* Container paths: a volume's mount point becomes a folder under the state folder (named volumes)
  or the bound host folder; a file an image COPYs is the repository's file; ``working_dir`` is
  mapped the same way.
* The images' built-ins (images.py): entrypoints, data folders, default ports, users.

Anything else, a variable included, is as compose gives it: what a container lacks, the local
program lacks too.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from scripts.local_stack import compose, images
from scripts.local_stack.images import HOST
from scripts.local_stack.supervise import Program

LOOPBACK = {"localhost", "127.0.0.1", "0.0.0.0"}
PORT_VARIABLES = {"airflow-apiserver": "STACK_AIRFLOW_PORT"}  # else STACK_<SERVICE>_PORT
URL = re.compile(r"(?P<scheme>[A-Za-z][\w+.-]*://)(?P<user>[^@/\s]*@)?(?P<host>[\w.-]+)(?::(?P<port>\d+))?")
HOST_TOKEN = re.compile(r"(?P<host>[\w.-]+)(?::(?P<port>\d+|\*))?")
PORT_OPTIONS = ("--port", "-p")


@dataclass
class Health:
    """A service's healthcheck, ready to run here, and compose's timing for it."""

    argv: list[str] | None
    start_period: float
    interval: float
    retries: int
    timeout: float


class Mapper:
    """The active compose services as programs; allocates (and remembers) local ports."""

    def __init__(
        self, services: dict[str, dict[str, Any]], variables: Mapping[str, str], project_dir: Path,
        state_dir: Path, ports: dict[str, int], bin_dir: Path,
    ) -> None:  # fmt: skip
        self.services, self.variables = services, variables
        self.project_dir, self.state_dir, self.bin_dir = project_dir, state_dir, bin_dir
        self.ports = ports  # "service:container port" -> local port, kept across starts
        self.kinds = {name: images.kind(service, project_dir) for name, service in services.items()}
        self._mounts: dict[str, dict[str, Path]] = {}

    def _dockerfile(self, name: str) -> str:
        return images.dockerfile(self.services[name], self.project_dir)

    def _command(self, name: str) -> list[str]:
        return compose.argv(self.services[name].get("command"))

    # --- ports -----------------------------------------------------------------------------------
    def own_ports(self, name: str) -> set[int]:
        """Ports the service listens on in its container: published ones and its image's server."""
        kind = self.kinds[name]
        server = images.airflow_server(self._command(name)) if kind == "airflow" else None
        builtin = {"postgres": images.POSTGRES_PORT, "redis": images.REDIS_PORT}.get(kind)
        found = set(compose.published(self.services[name]))
        return found | {port for port in (builtin, server and server[0]) if port}

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
        """A port on the container's own loopback, else one published on the host's."""
        if port in self.own_ports(name):
            return self.port(name, port)
        for other, service in self.services.items():
            for target, host_port in compose.published(service).items():
                if host_port == port:
                    return self.port(other, target)
        raise compose.ComposeError(f"{name}: nothing listens on port {port}")

    # --- paths -----------------------------------------------------------------------------------
    def mounts(self, name: str) -> dict[str, Path]:
        """Container path -> local path for service ``name``, most specific first."""
        if name not in self._mounts:
            found: dict[str, Path] = {}
            if self.kinds[name] == "airflow":
                found[images.AIRFLOW_HOME] = self.state_dir / "airflow"
                found.update(images.copies(self._dockerfile(name), self.project_dir))
            elif self.kinds[name] == "redis":
                found[images.REDIS_DATA] = self.state_dir / "containers" / name / "data"
            found.update(compose.volumes(self.services[name], self.project_dir, self.state_dir / "volumes"))
            self._mounts[name] = dict(sorted(found.items(), key=lambda item: -len(item[0])))
        return self._mounts[name]

    def path(self, name: str, container_path: str) -> Path:
        for mount, local in self.mounts(name).items():
            if PurePosixPath(container_path).is_relative_to(mount):
                return local / PurePosixPath(container_path).relative_to(mount)
        raise compose.ComposeError(f"{name}: {container_path} is under no mount point")

    # --- strings ---------------------------------------------------------------------------------
    def remap(self, name: str, text: str, arg: bool = False) -> str:
        """``text`` with service hosts, ports and container paths made local; in an argument, also
        the hosts of an option's value list (``--allowed-hosts=mlflow,mlflow:*``)."""

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
        if item == "0.0.0.0" or (match and match["host"] in self.services):
            port = match["port"] if match else None
            if port and port != "*":
                port = str(self.port(match["host"], int(port)))  # type: ignore[index]
            return f"{HOST}:{port}" if port else HOST
        return item

    def remap_argv(self, name: str, args: list[str]) -> list[str]:
        out = [self.remap(name, arg, arg=True) for arg in args]
        # The port options of the service's own servers: --port=N, --port N, -p N.
        for i, arg in enumerate(out):
            value = arg[7:] if arg.startswith("--port=") else out[i + 1] if arg in PORT_OPTIONS else ""
            if value.isdigit() and int(value) in self.own_ports(name):
                local = str(self.port(name, int(value)))
                out[i : i + 1 + (arg in PORT_OPTIONS)] = [f"--port={local}"] if "=" in arg else [arg, local]
        return out

    # --- one service -----------------------------------------------------------------------------
    def environment(self, name: str) -> dict[str, str]:
        """The container's environment: the image's, then compose's; made local."""
        kind, env = self.kinds[name], {}
        if kind == "airflow":
            env = {**images.AIRFLOW_IMAGE_ENV, **images.env_lines(self._dockerfile(name))}
        elif kind == "postgres":
            env = {"PGDATA": images.PGDATA}
        env.update(compose.environment(self.services[name], self.project_dir, self.variables))
        env = {key: self.remap(name, value) for key, value in env.items()}
        path = f"{self.bin_dir}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}"
        env.update(PATH=path, HOME=os.environ.get("HOME", "/root"), HOSTNAME=images.hostname())
        env.update({key: os.environ[key] for key in ("LANG", "LC_ALL") if key in os.environ})
        if kind == "postgres":
            env["PGPORT"] = str(self.port(name, images.POSTGRES_PORT))  # the server's and psql's default
        server = images.airflow_server(self._command(name)) if kind == "airflow" else None
        if server:
            env.update({server[1]: HOST, server[2]: str(self.port(name, server[0]))})
        return env

    def program(self, name: str, priority: int) -> Program:
        service, kind = self.services[name], self.kinds[name]
        env, command, user = self.environment(name), self._command(name), None
        if kind == "postgres":
            command = [
                images.pg_bin("postgres"),
                "-c",
                f"listen_addresses={HOST}",
                "-c",
                "unix_socket_directories=",
            ]
            user = images.run_as_postgres()
        elif kind == "redis":
            data = self.path(name, images.REDIS_DATA)
            data.mkdir(parents=True, exist_ok=True)
            command = ["redis-server", "--bind", HOST, "--port", str(self.port(name, images.REDIS_PORT))]
            command += ["--dir", str(data)]
        elif kind == "airflow" and command[:1] and command[0] not in images.AIRFLOW_ENTRYPOINT_DIRECT:
            command = ["airflow", *command]
        if not command:
            raise compose.ComposeError(f"{name}: no command (the image's default is not known here)")
        argv = self.remap_argv(name, command)
        argv[0] = shutil.which(argv[0], path=env["PATH"]) or argv[0]
        # The service's working_dir, mapped as any container path; else the image's working folder:
        # the Airflow home, or a folder of the service's own.
        workdir = service.get("working_dir")
        cwd = (
            self.path(name, str(workdir))
            if workdir
            else self.state_dir / ("airflow" if kind == "airflow" else f"containers/{name}")
        )
        cwd.mkdir(parents=True, exist_ok=True)
        # The postgres image stops on SIGINT (fast shutdown); the Airflow image's dumb-init signals
        # the whole process group unless DUMB_INIT_SETSID=0.
        stop_signal = service.get("stop_signal") or ("INT" if kind == "postgres" else "TERM")
        return Program(
            name, argv, env, str(cwd), user, restart=str(service.get("restart", "no")),
            stop_signal=str(stop_signal).removeprefix("SIG"),
            stop_grace=compose.seconds(service.get("stop_grace_period"), 10),
            stop_as_group=kind == "airflow" and env.get("DUMB_INIT_SETSID", "1") != "0", priority=priority,
        )  # fmt: skip

    def health(self, name: str) -> Health:
        service = self.services[name]
        check, argv = service.get("healthcheck") or {}, compose.healthcheck(service)
        if argv:
            argv = self.remap_argv(name, argv)
            if self.kinds[name] == "redis" and argv[0] == "redis-cli":  # the image's default port
                argv[1:1] = ["-p", str(self.port(name, images.REDIS_PORT))]
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
