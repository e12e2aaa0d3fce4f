"""Real servers for the tests: a throwaway PostgreSQL and an ``mlflow server`` on loopback.

Both bind 127.0.0.1 on free ports and are stopped by their process ids, never by name.
PostgreSQL refuses to run as root, so as root the server runs as the ``postgres`` user (or
``nobody``) through ``runuser``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

# One copy of "which initdb, and as which user": the same as `make stack` uses.
from scripts.local_stack.images import pg_bin as _pg_bin
from scripts.local_stack.images import run_as_postgres


def _run_as_postgres() -> list[str]:
    """runuser's prefix for PostgreSQL's programs (root may not run them), or nothing."""
    user = run_as_postgres()
    return ["runuser", "-u", user, "--"] if user else []


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(check, timeout: float, what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    tail = log.read_text()[-3000:] if log and log.exists() else ""
    raise RuntimeError(f"{what} did not come up within {timeout:.0f}s\n{tail}")


@dataclass
class PostgresServer:
    """A PostgreSQL cluster in a temporary folder, trust auth on 127.0.0.1 only."""

    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="sentiment-pg-")))
    port: int = field(default_factory=free_port)
    user: str = "postgres"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    def url(self, database: str = "postgres", driver: str = "postgresql") -> str:
        return f"{driver}://{self.user}@127.0.0.1:{self.port}/{database}"

    def _chown(self) -> None:
        prefix = _run_as_postgres()
        if prefix:
            user = prefix[2]
            os.chmod(self.root, 0o755)
            shutil.chown(self.root, user)
            for path in self.root.rglob("*"):
                shutil.chown(path, user)

    def init(self) -> PostgresServer:
        self._chown()
        subprocess.run(
            [*_run_as_postgres(), _pg_bin("initdb"), "-D", str(self.data), "-U", self.user, "-A", "trust",
             "-E", "UTF8", "--no-instructions"],
            check=True, capture_output=True,
        )  # fmt: skip
        return self

    def start(self) -> PostgresServer:
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories='{self.root}' "
            "-c fsync=off -c max_connections=200"
        )
        subprocess.run(
            [*_run_as_postgres(), _pg_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", options,
             "-w", "-t", "60", "start"],
            check=True, capture_output=True,
        )  # fmt: skip
        return self

    @property
    def pid(self) -> int | None:
        pid_file = self.data / "postmaster.pid"
        try:
            return int(pid_file.read_text().splitlines()[0])
        except (FileNotFoundError, IndexError, ValueError):
            return None

    def stop(self, timeout: float = 30) -> None:
        """Fast shutdown by the postmaster's pid (SIGINT), then wait for it to exit."""
        pid = self.pid
        if pid is None:
            return
        try:
            os.kill(pid, signal.SIGINT)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.2)
        os.kill(pid, signal.SIGKILL)

    def create_database(self, name: str) -> str:
        import psycopg2

        conn = psycopg2.connect(self.url())
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        conn.close()
        return self.url(name)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@dataclass
class MlflowServer:
    """``mlflow server`` with a PostgreSQL backend store and served artifacts."""

    backend_uri: str
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="sentiment-mlflow-")))
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None
    # More of `mlflow server`'s options (e.g. --app-name basic-auth) and environment; the server
    # runs in `root`, where relative sqlite URIs put their files.
    extra_args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    def start(self, timeout: float = 240) -> MlflowServer:
        mlflow_bin = Path(sys.executable).with_name("mlflow")
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [str(mlflow_bin), "server", "--backend-store-uri", self.backend_uri, "--serve-artifacts",
                 "--artifacts-destination", str(self.root / "artifacts"), "--host", "127.0.0.1",
                 "--port", str(self.port), "--workers", "1", *self.extra_args],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=self.root,
                env={**os.environ, **self.env},
            )  # fmt: skip
        _wait_for(self.healthy, timeout, "mlflow server", self.log)
        return self

    def healthy(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(
                f"mlflow server exited with {self.process.returncode}\n{self.log.read_text()[-3000:]}"
            )
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def stop(self) -> None:
        """Stop the server's process group by its pid (the server forks workers)."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
