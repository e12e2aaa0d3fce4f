"""`make stack`, `make stack-down`, `make stack-status`: the local stack's command line.

    python -m scripts.local_stack up | down | status | airflow ARGS...

`up` starts the compose file's services (or applies its changes to a running stack, as `docker
compose up -d`) and waits for their healthchecks and the DAG; `down` stops every program and all
they started, by pid; `status` shows each program's state, health and log; `airflow` runs the CLI
with airflow-scheduler's environment. How the compose file becomes processes, and what it cannot
emulate: README.md in this folder.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

from scripts.local_stack import compose
from scripts.local_stack.images import StackError
from scripts.local_stack.stack import CLI_SERVICE, Stack


def main(argv: list[str] | None = None) -> int:
    """Run one command against the stack of ``STACK_DIR`` (default .local/stack).

    Args:
        argv: The command and its arguments (default: the process's).

    Returns:
        The exit status: 0 on success, 1 when the stack failed or is not running (status: when a
        program is down or unhealthy), else the airflow CLI's own.
    """
    parser = argparse.ArgumentParser(
        prog="python -m scripts.local_stack",
        description="docker-compose.yaml's services as local processes (scripts/local_stack/README.md)",
    )
    parser.add_argument("command", choices=["up", "down", "status", "airflow"])
    parser.add_argument("args", nargs="...", help="for airflow: the CLI's arguments")
    args = parser.parse_args(argv)
    stack = Stack.from_env()
    try:
        if args.command == "up":
            stack.up()
            print(stack.summary())
        elif args.command == "down":
            stack.down()
        elif args.command == "status":
            return stack.status()
        else:
            spec = stack.supervisor.spec(CLI_SERVICE)
            return subprocess.run(["airflow", *args.args], env=spec["env"], cwd=spec["cwd"]).returncode
    except (StackError, compose.ComposeError, StopIteration) as exc:
        print(f"stack: {exc or 'the stack has not been started (`make stack`)'}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
