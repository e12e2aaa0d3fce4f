"""``[core] hostname_callable`` for the Celery test's workers.

Both workers run on this machine, so the host name Airflow records on a task instance would be
the same for both; each worker's environment names it instead (STACK_WORKER_NAME).
"""

from __future__ import annotations

import os
import socket


def worker_hostname() -> str:
    """The worker's name from STACK_WORKER_NAME, else the machine's FQDN (Airflow's default)."""
    return os.environ.get("STACK_WORKER_NAME") or socket.getfqdn()
