"""Start one program of ``make stack`` (supervisord runs this): a session of its own, recorded,
then exec. ``scripts/stack.py down`` stops every session ever recorded, by pid, so that it also
stops what a program left behind when it died (a killed scheduler's task processes, which live
in other process groups but in the same session).

    python session_exec.py SPEC.json

SPEC holds ``name``, ``argv``, ``env`` (the whole environment), ``cwd``, ``sessions`` (the
record to append ``<pid> <start time in clock ticks> <name>`` to) and optionally ``user`` (run as
that user, e.g. PostgreSQL, which refuses to run as root). Standard library only.
"""

import json
import os
import pwd
import sys


def main() -> None:
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    # supervisord makes each child a process group leader, and setsid() refuses group leaders:
    # step back into supervisord's group first.
    if os.getpgrp() == os.getpid():
        os.setpgid(0, os.getpgid(os.getppid()))
    os.setsid()
    with open("/proc/self/stat") as f:
        ticks = f.read().rsplit(")", 1)[1].split()[19]
    with open(spec["sessions"], "a") as f:
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
