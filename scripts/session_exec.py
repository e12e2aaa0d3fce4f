"""Start one program of ``make stack`` (supervisord runs this): a session of its own, recorded,
then exec. ``scripts/stack.py down`` stops every session ever recorded, by pid, so that it also
stops what a program left behind when it died (a killed scheduler's task processes, which live
in other process groups but in the same session).

    python session_exec.py SPEC.json

SPEC holds ``name``, ``argv``, ``env`` (the whole environment), ``cwd``, ``log`` (the program's
log file: its stdout and stderr, appended to), ``sessions`` (the record to append ``<pid> <start
time in clock ticks> <name>`` to) and optionally ``user`` (run as that user, e.g. PostgreSQL, which
refuses to run as root). Standard library only.

The program writes its log itself rather than through supervisord's pipe: supervisord closes that
pipe when the program's main process exits, and whatever the program left running would then die
on its next write (a killed scheduler's task processes, which log to the scheduler's stdout).

A restarted program must be able to bind its ports, as a restarted container can: what an earlier
run of the same program left listening (MLflow's uvicorn workers, the scheduler's health server)
is killed first. Its other leftovers (a killed scheduler's task processes) finish their work.
"""

import json
import os
import pwd
import signal
import sys
import time
from pathlib import Path


def _listening_inodes() -> set[str]:
    inodes = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A":  # LISTEN
                inodes.add(f"socket:[{fields[9]}]")
    return inodes


def _stat(pid: str) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _stop_earlier_listeners(name: str, record: Path) -> None:
    earlier = set()
    for line in record.read_text().splitlines():
        pid, ticks, *rest = line.split()
        fields = _stat(pid)
        if rest == [name] and (fields is None or fields[19] == ticks):  # not a reused pid
            earlier.add(pid)
    listening, killed = _listening_inodes(), []
    for proc in Path("/proc").iterdir():
        fields = _stat(proc.name) if proc.name.isdigit() else None
        if fields and fields[3] in earlier:
            try:
                if any(os.readlink(fd) in listening for fd in proc.joinpath("fd").iterdir()):
                    os.kill(int(proc.name), signal.SIGKILL)
                    killed.append(proc.name)
            except OSError:
                continue
    deadline = time.monotonic() + 10
    while any((_stat(pid) or ["Z"])[0] != "Z" for pid in killed) and time.monotonic() < deadline:
        time.sleep(0.1)


def main() -> None:
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    log = os.open(spec["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    os.write(1, f"--- {time.strftime('%Y-%m-%dT%H:%M:%S%z')} {' '.join(spec['argv'])}\n".encode())
    record = Path(spec["sessions"])
    if record.exists():
        _stop_earlier_listeners(spec["name"], record)
    # supervisord makes each child a process group leader, and setsid() refuses group leaders:
    # step back into supervisord's group first.
    if os.getpgrp() == os.getpid():
        os.setpgid(0, os.getpgid(os.getppid()))
    os.setsid()
    with open("/proc/self/stat") as f:
        ticks = f.read().rsplit(")", 1)[1].split()[19]
    with open(record, "a") as f:
        f.write(f"{os.getpid()} {ticks} {spec['name']}\n")
    if spec.get("user"):
        user = pwd.getpwnam(spec["user"])
        os.initgroups(user.pw_name, user.pw_gid)
        os.setgid(user.pw_gid)
        os.setuid(user.pw_uid)
    os.chdir(spec["cwd"])
    os.execvpe(spec["argv"][0], spec["argv"], spec["env"])


if __name__ == "__main__":
    main()
