"""What the stack's images do on their own, done on this machine: the ``postgres`` image's data
folder, port, user and first start (initdb, then the init scripts), the ``redis`` image's server,
and the Airflow image's (``FROM apache/airflow``) home, entrypoint, servers, COPY and ENV lines.
"""

from __future__ import annotations

import functools
import os
import pwd
import re
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
# The official Airflow image: its home, and Airflow's defaults under it, written out so that they
# follow the home's folders. Its entrypoint runs bash and python directly, anything else as airflow.
AIRFLOW_HOME = "/opt/airflow"
AIRFLOW_IMAGE_ENV = {
    "AIRFLOW_HOME": AIRFLOW_HOME,
    "AIRFLOW__CORE__DAGS_FOLDER": f"{AIRFLOW_HOME}/dags",
    "AIRFLOW__CORE__PLUGINS_FOLDER": f"{AIRFLOW_HOME}/plugins",
    "AIRFLOW__LOGGING__BASE_LOG_FOLDER": f"{AIRFLOW_HOME}/logs",
}
AIRFLOW_ENTRYPOINT_DIRECT = {"bash", "python"}
# Airflow's servers: the command, its port in the container (Airflow's default), the settings of
# its address.
AIRFLOW_SERVERS = {
    "api-server": (8080, "AIRFLOW__API__HOST", "AIRFLOW__API__PORT"),
    "scheduler": (8974, "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_HOST",
                  "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT"),
    "celery flower": (5555, "AIRFLOW__CELERY__FLOWER_HOST", "AIRFLOW__CELERY__FLOWER_PORT"),
}  # fmt: skip
# The postgres image: port, data folder (PGDATA), init-script folder, stop signal (fast shutdown).
POSTGRES_PORT, PGDATA, POSTGRES_INITDB = 5432, "/var/lib/postgresql/data", "/docker-entrypoint-initdb.d"
REDIS_PORT, REDIS_DATA = 6379, "/data"


class StackError(RuntimeError):
    """The local stack cannot do what was asked; the message says why and what to do."""


def kind(service: dict[str, Any], project_dir: Path) -> str:
    """Whose built-ins apply to a service: ``postgres``, ``redis``, ``airflow`` or ``plain``."""
    image = str(service.get("image", ""))
    if image.startswith(("postgres:", "redis:")):
        return image.split(":")[0]
    return "airflow" if "FROM apache/airflow:" in dockerfile(service, project_dir) else "plain"


def dockerfile(service: dict[str, Any], project_dir: Path) -> str:
    """The service's Dockerfile, continuation lines joined ('' when it has no build)."""
    build = service.get("build")
    if not build:
        return ""
    build = {"context": build} if isinstance(build, str) else build
    path = project_dir / build.get("context", ".") / build.get("dockerfile", "Dockerfile")
    return re.sub(r"\\\n", " ", path.read_text())


def copies(text: str, project_dir: Path) -> dict[str, Path]:
    """A Dockerfile's ``COPY src /dest`` lines: container path -> the project's file."""
    found = {}
    for line in text.splitlines():
        words = [word for word in line.split() if not word.startswith("--")]
        if words[:1] == ["COPY"] and len(words) == 3 and words[2].startswith("/"):
            found[words[2].rstrip("/")] = project_dir / words[1].rstrip("/")
    return found


def env_lines(text: str) -> dict[str, str]:
    """A Dockerfile's ``ENV KEY=VALUE`` lines."""
    lines = [line[4:].strip().partition("=") for line in text.splitlines() if line.startswith("ENV ")]
    return {key: value for key, _, value in lines}


def airflow_server(command: list[str]) -> tuple[int, str, str] | None:
    """(container port, host setting, port setting) of the Airflow server ``command`` runs."""
    return next((v for k, v in AIRFLOW_SERVERS.items() if command[: len(k.split())] == k.split()), None)


def run_as_postgres() -> str | None:
    """The user PostgreSQL runs as (root may not): none needed unless we are root."""
    if os.geteuid() != 0:
        return None
    for user in ("postgres", "nobody"):
        try:
            pwd.getpwnam(user)
        except KeyError:
            continue
        return user
    raise StackError("running as root and there is no 'postgres' or 'nobody' user for PostgreSQL")


def pg_bin(name: str) -> str:
    """A PostgreSQL program from PATH, else Debian's newest /usr/lib/postgresql/*/bin."""
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), key=lambda p: int(p.parts[4]))
    if not versions:
        raise StackError(f"PostgreSQL's {name} is not installed (apt-get install postgresql)")
    return str(versions[-1])


@functools.cache
def hostname() -> str:
    """The name Airflow records for this machine (its getfqdn): HOSTNAME, as in a container."""
    name = socket.gethostname()
    try:
        infos = socket.getaddrinfo(name, None, 0, socket.SOCK_DGRAM, 0, socket.AI_CANONNAME)
    except OSError:
        return name
    return next((info[3] for info in infos if info[3]), name)


def init_cluster(
    env: dict[str, str], user: str | None, init_dir: Path | None, state_dir: Path, log: Path
) -> bool:
    """The postgres image's first start of an empty PGDATA: initdb with POSTGRES_PASSWORD, then
    the init folder's scripts (with the service's environment) on a temporary server.

    Returns:
        False when the cluster already existed.
    """
    data = Path(env["PGDATA"])
    if (data / "PG_VERSION").exists():
        return False
    run_as = ["runuser", "-u", user, "--"] if user else []
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True, mode=0o700)
    pwfile = data.parent / f".{data.name}.pwfile"
    pwfile.write_text(env["POSTGRES_PASSWORD"] + "\n")
    log.touch()
    if user:  # the server's user must reach its folder
        for folder in [data.parent, *data.parent.parents]:
            if folder.is_relative_to(state_dir):
                folder.chmod(folder.stat().st_mode | 0o011)
            elif not folder.stat().st_mode & 0o001:
                raise StackError(f"{user} cannot reach {data}: {folder} is closed to others")
        for path in (data, pwfile, log):
            shutil.chown(path, user)
    superuser = env.get("POSTGRES_USER", "postgres")
    pg_ctl = [*run_as, pg_bin("pg_ctl"), "-D", str(data)]
    options = f"-c listen_addresses={HOST} -c unix_socket_directories=''"
    steps = [[*run_as, pg_bin("initdb"), "-D", str(data), "-U", superuser, f"--pwfile={pwfile}",
              "--auth=scram-sha-256", "-E", "UTF8", "--no-instructions"],
             [*pg_ctl, "-l", str(log), "-o", options, "-w", "start"]]  # fmt: skip
    steps += [["bash", str(script)] for script in sorted(init_dir.glob("*.sh"))] if init_dir else []
    steps.append([*pg_ctl, "-m", "fast", "-w", "stop"])
    client = {**env, "PGHOST": HOST, "PGPASSWORD": env["POSTGRES_PASSWORD"], "POSTGRES_USER": superuser}
    try:
        for step in steps:
            done = subprocess.run(step, env=client, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise StackError(
                    f"postgres first start: {' '.join(step[-2:])} failed:\n{done.stdout}{done.stderr}"
                )
    except BaseException:
        subprocess.run([*pg_ctl, "-m", "immediate", "stop"], capture_output=True, check=False)
        shutil.rmtree(data, ignore_errors=True)
        raise
    finally:
        pwfile.unlink(missing_ok=True)
    return True
