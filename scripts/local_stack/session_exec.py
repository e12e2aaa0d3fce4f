"""Start one program of ``make stack`` (supervisord runs this): a session of its own, recorded,
then exec. ``python -m scripts.local_stack down`` stops every session ever recorded, by pid, so that it also
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

A restarted program starts as a restarted container does, with nothing of its earlier run alive:
every process left in an earlier session of the same program is SIGKILLed first (docker kills a
container's whole process tree when its main process dies). A killed scheduler's LocalExecutor
workers inherit its PostgreSQL connections (Airflow forks them with ``engine.dispose(close=
False)``), so a leftover worker keeps the dead scheduler's open transaction and its row locks on
the DAG run alive, and the new scheduler, which skips locked rows, never schedules that run
again. The new scheduler resets the tasks that died with the old one (``adopt_or_reset_orphaned_
tasks``) and runs them again.
"""

import json
import os
import pwd
import signal
import sys
import time
from pathlib import Path


def _stat(pid: str) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _stop_earlier_sessions(name: str, record: Path) -> None:
    earlier = set()
    for line in record.read_text().splitlines():
        pid, ticks, *rest = line.split()
        fields = _stat(pid)
        if rest == [name] and (fields is None or fields[19] == ticks):  # not a reused pid
            earlier.add(pid)
    killed = []
    for proc in Path("/proc").iterdir():
        fields = _stat(proc.name) if proc.name.isdigit() else None
        if fields and fields[3] in earlier and fields[0] != "Z":
            try:
                os.kill(int(proc.name), signal.SIGKILL)
                killed.append(proc.name)
            except OSError:
                continue
    if killed:
        os.write(1, f"--- killed {len(killed)} processes left by an earlier {name}\n".encode())
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
        _stop_earlier_sessions(spec["name"], record)
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
