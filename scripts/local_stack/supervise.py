"""The process side of ``make stack``: supervisord runs every program, and a record of sessions
lets ``down`` stop everything the programs ever started, by pid.

supervisord (the PyPI ``supervisor`` package) gives each program a restart policy, an order and
a status; it runs in the foreground of a session of its own, controlled through a Unix socket in
the state folder (``supervisorctl -c <state>/supervisord.conf status`` works too). Each program
starts through ``session_exec.py``, which puts it in a new session, appends ``<pid> <start ticks>
<name>`` to ``<state>/sessions`` and sends its output to ``<logs>/<name>.log``: a program's
children stay in its session even when they leave its process group, so a restart can kill what a
killed program left (as a container's processes die with it) and ``down`` can stop everything.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import xmlrpc.client
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SESSION_EXEC = Path(__file__).with_name("session_exec.py")
SUPERVISORD = "supervisord"


@dataclass
class Program:
    """One program for supervisord, as ``mapping.py`` maps a compose service."""

    name: str
    argv: list[str]
    env: dict[str, str]
    cwd: str
    user: str | None = None
    restart: str = "unless-stopped"  # compose's restart policy
    stop_signal: str = "TERM"
    stop_grace: float = 10.0
    stop_as_group: bool = False
    priority: int = 100


# --- /proc -------------------------------------------------------------------------------------
def proc_stat(pid: int) -> list[str] | None:
    """Fields 3.. of /proc/<pid>/stat (state, ppid, pgrp, session, ...), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()


def session_members(sid: int) -> list[int]:
    """Live (not zombie) processes of session ``sid``."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = proc_stat(int(entry.name))
            if fields and fields[3] == str(sid) and fields[0] != "Z":
                members.append(int(entry.name))
    return members


@dataclass(frozen=True)
class Session:
    """A session a program started in: its leader's pid and start time, and the program."""

    pid: int
    ticks: int
    name: str

    def alive(self) -> bool:
        """The leader itself still runs (same pid and start time, not a zombie)."""
        fields = proc_stat(self.pid)
        return fields is not None and int(fields[19]) == self.ticks and fields[0] != "Z"

    def members(self) -> list[int]:
        """Our processes left in the session. Linux gives no new process a pid that is still a
        session id, so once the leader's pid belongs to another process, the session is gone."""
        fields = proc_stat(self.pid)
        if fields is not None and int(fields[19]) != self.ticks:
            return []
        return session_members(self.pid)

    def signal(self, sig: signal.Signals) -> bool:
        members = self.members()
        for pid in members:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        return bool(members)


def stop_sessions(sessions: list[Session], sig: signal.Signals, timeout: float) -> None:
    """``sig`` to every member of ``sessions``; SIGKILL what is left after ``timeout``."""
    signalled = [s for s in sessions if s.signal(sig)]
    deadline = time.monotonic() + timeout
    while any(s.members() for s in signalled) and time.monotonic() < deadline:
        time.sleep(0.2)
    for session in signalled:
        if session.signal(signal.SIGKILL):
            print(
                f"stack: {session.name} (session {session.pid}) ignored {sig.name}: SIGKILL", file=sys.stderr
            )
    while any(s.members() for s in signalled) and time.monotonic() < deadline + 10:
        time.sleep(0.2)


# --- supervisord ---------------------------------------------------------------------------------
class Supervisor:
    """supervisord of one state folder: its configuration, daemon, API and session record."""

    def __init__(self, state_dir: Path, logs: Path) -> None:
        self.state_dir = state_dir
        self.logs = logs
        self.conf = state_dir / "supervisord.conf"
        self.socket = state_dir / "supervisord.sock"
        self.record = state_dir / "sessions"
        self.specs = state_dir / "programs"

    # --- configuration ---------------------------------------------------------------------
    def write(self, programs: list[Program]) -> None:
        """supervisord.conf and one spec file per program (named by its content, so that a
        changed program is a changed section for ``update``)."""
        self.specs.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.logs.mkdir(parents=True, exist_ok=True)
        sections = [
            f"[supervisord]\nnodaemon=true\nlogfile={self.logs / 'supervisord.log'}\n"
            f"pidfile={self.state_dir / 'supervisord.pid'}\nchildlogdir={self.logs}\n",
            f"[unix_http_server]\nfile={self.socket}\nchmod=0700\n",
            "[rpcinterface:supervisor]\n"
            "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n",
            f"[supervisorctl]\nserverurl=unix://{self.socket}\n",
        ]
        kept = set()
        for program in programs:
            spec = {
                "name": program.name,
                "argv": program.argv,
                "env": program.env,
                "cwd": program.cwd,
                "log": str(self.logs / f"{program.name}.log"),
                "user": program.user,
                "sessions": str(self.record),
            }
            text = json.dumps(spec, indent=1, sort_keys=True)
            path = self.specs / f"{program.name}.{hashlib.sha256(text.encode()).hexdigest()[:12]}.json"
            if not path.exists():
                path.touch(mode=0o600)
                path.write_text(text)
            kept.add(path)
            sections.append(self._section(program, path))
        for stale in set(self.specs.glob("*.json")) - kept:
            stale.unlink()
        self.conf.write_text("\n".join(sections).replace("%", "%%"))

    def _section(self, program: Program, spec: Path) -> str:
        one_shot = program.restart in ("no", "")
        autorestart = {"always": "true", "unless-stopped": "true"}.get(program.restart, "false")
        if program.restart.startswith("on-failure"):
            autorestart = "unexpected"
        # As Docker: a program that ran 10 s counts as started and is restarted at once when it
        # exits; quicker exits are retried with a growing delay.
        return (
            f"[program:{program.name}]\n"
            f"command={sys.executable} -I -S {SESSION_EXEC} {spec}\n"
            f"autostart=false\nautorestart={autorestart}\n"
            f"startsecs={0 if one_shot else 10}\nstartretries={0 if one_shot else 100}\nexitcodes=0\n"
            f"stopsignal={program.stop_signal}\nstopwaitsecs={int(program.stop_grace)}\n"
            f"stopasgroup={str(program.stop_as_group).lower()}\nkillasgroup=true\n"
            # The program writes <logs>/<name>.log itself (see session_exec.py).
            f"priority={program.priority}\nredirect_stderr=true\nstdout_logfile=NONE\n"
        )

    # --- the daemon ------------------------------------------------------------------------
    @property
    def rpc(self) -> Any:
        from supervisor.xmlrpc import SupervisorTransport

        transport = SupervisorTransport(None, None, f"unix://{self.socket}")
        return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport).supervisor

    def daemon(self) -> Session | None:
        """supervisord's own session, if it runs."""
        found = [s for s in self.sessions() if s.name == SUPERVISORD]
        return found[-1] if found and found[-1].alive() else None

    def start_daemon(self, timeout: float = 30) -> None:
        self.record.touch(mode=0o644)
        with open(self.logs / "supervisord.out", "ab") as out:
            process = subprocess.Popen(
                [str(Path(sys.executable).with_name("supervisord")), "-c", str(self.conf)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        ticks = int(proc_stat(process.pid)[19])  # type: ignore[index]
        with open(self.record, "a") as f:
            f.write(f"{process.pid} {ticks} {SUPERVISORD}\n")
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(OSError, xmlrpc.client.Fault):
                if self.rpc.getState()["statename"] == "RUNNING":
                    return
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"supervisord did not start: see {self.logs / 'supervisord.log'}")
            time.sleep(0.2)

    def update(self) -> list[str]:
        """Apply the written configuration to the running supervisord (``supervisorctl update``):
        changed and removed programs are stopped; returns the names that changed or went."""
        added, changed, removed = self.rpc.reloadConfig()[0]
        for name in changed + removed:
            with contextlib.suppress(xmlrpc.client.Fault):
                self.rpc.stopProcessGroup(name)
            self.rpc.removeProcessGroup(name)
        for name in changed + added:
            self.rpc.addProcessGroup(name)
        return changed + removed

    def spec(self, name: str) -> dict[str, Any]:
        """The program as supervisord starts it (argv, env, cwd, ...)."""
        return json.loads(next(self.specs.glob(f"{name}.*.json")).read_text())

    def run_beside(self, name: str, argv: list[str], timeout: float) -> bool:
        """Run ``argv`` with the program's environment and folder (as `docker exec`); True on exit 0."""
        spec = self.spec(name)
        try:
            done = subprocess.run(
                argv, env=spec["env"], cwd=spec["cwd"], capture_output=True, timeout=timeout
            )
        except subprocess.TimeoutExpired:
            return False
        return done.returncode == 0

    def tail(self, name: str, chars: int = 3000) -> str:
        """The end of the program's log."""
        return (self.logs / f"{name}.log").read_text(errors="replace")[-chars:]

    def program_pid(self, name: str) -> int:
        """The pid of program ``name`` once it runs its own command (past session_exec.py, which
        first frees what an earlier run left listening), else 0."""
        pid = self.info()[name]["pid"]
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes() if pid else b""
        except OSError:
            return 0
        return pid if cmdline and SESSION_EXEC.name.encode() not in cmdline else 0

    def info(self) -> dict[str, dict[str, Any]]:
        """Program name -> supervisord's process info (statename, pid, exitstatus, ...)."""
        return {p["name"]: p for p in self.rpc.getAllProcessInfo()}

    def shutdown(self, timeout: float = 120) -> None:
        """Stop every program (reverse priority, each with its stop signal and grace), then
        supervisord itself."""
        daemon = self.daemon()
        if daemon is None:
            return
        with contextlib.suppress(OSError, xmlrpc.client.Fault):
            self.rpc.stopAllProcesses()
            self.rpc.shutdown()
        deadline = time.monotonic() + timeout
        while daemon.alive() and time.monotonic() < deadline:
            time.sleep(0.2)

    # --- the session record ------------------------------------------------------------------
    def sessions(self) -> list[Session]:
        """Every session recorded since the record was last cleared, oldest first."""
        if not self.record.exists():
            return []
        found = []
        for line in self.record.read_text().splitlines():
            pid, ticks, name = line.split(maxsplit=2)
            found.append(Session(int(pid), int(ticks), name))
        return found

    def sweep(self, last: set[str], timeout: float = 10) -> list[str]:
        """Stop what is left in every recorded session (those named in ``last`` after the others,
        with SIGINT); clear the record. Returns the names of the sessions that had processes."""
        sessions = [s for s in self.sessions() if s.members()]
        stop_sessions([s for s in sessions if s.name not in last], signal.SIGTERM, timeout)
        stop_sessions([s for s in sessions if s.name in last], signal.SIGINT, timeout)
        left = [s for s in self.sessions() if s.members()]
        if not left:
            self.record.unlink(missing_ok=True)
        return [s.name for s in sessions]
