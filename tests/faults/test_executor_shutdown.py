"""The project's LocalExecutor (plugins/sentiment_executor.py) stops with a worker still busy.

The fault behind two red CI runs: when ``end()`` starts, the worker that ran the last task is
still finishing it (reporting its result). Upstream's ``end()`` then sends its stop message, an
idle worker takes it and exits, and the loop later skips that dead worker: one message short, and
the busy worker, back at the queue, waits forever while ``end()`` joins it. Here the workers are
real forked processes running the workers' queue loop, the first of them busy for 2 s, and each
stop message is given time to be taken before the next is sent, as on a loaded machine; no DAG,
no database.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from multiprocessing.queues import SimpleQueue

from airflow.executors import local_executor

from plugins.sentiment_executor import LocalExecutor as ProjectLocalExecutor

WORKERS = 4


def _alive(executor: local_executor.LocalExecutor) -> int:
    return sum(proc.is_alive() for proc in list(executor.workers.values()))


def _slow_stop_messages(executor: local_executor.LocalExecutor) -> None:
    """After each message, wait until a worker has taken it and exited (a loaded scheduler)."""
    put = executor.activity_queue.put

    def put_then_wait(item: object) -> None:
        before = _alive(executor)
        put(item)
        deadline = time.monotonic() + 20
        while item is None and _alive(executor) >= before and time.monotonic() < deadline:
            time.sleep(0.01)

    executor.activity_queue.put = put_then_wait  # type: ignore[method-assign]


def _worker(queue: SimpleQueue, busy_s: float) -> None:
    """A LocalExecutor worker's loop (take items until a None), busy for busy_s first."""
    time.sleep(busy_s)
    while queue.get() is not None:
        pass


def _end_with_a_busy_worker(
    executor: local_executor.LocalExecutor, wait_s: float
) -> tuple[bool, Callable[[], None]]:
    """Run ``end()`` with the first of the workers busy for 2 s; True if it returned within wait_s."""
    fork = multiprocessing.get_context("fork")
    executor.activity_queue = fork.SimpleQueue()
    executor.result_queue = fork.SimpleQueue()
    executor.workers = {}
    for busy_s in [2.0] + [0.0] * (WORKERS - 1):
        proc = fork.Process(target=_worker, args=(executor.activity_queue, busy_s), daemon=True)
        proc.start()
        executor.workers[proc.pid] = proc
    pids = list(executor.workers)
    time.sleep(0.5)  # the idle ones are waiting on the queue
    _slow_stop_messages(executor)
    ending = threading.Thread(target=executor.end, daemon=True)
    ending.start()
    ending.join(timeout=wait_s)

    def cleanup() -> None:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        ending.join(timeout=30)

    return not ending.is_alive(), cleanup


def test_the_project_executor_stops_every_worker_even_with_one_busy() -> None:
    executor = ProjectLocalExecutor(parallelism=WORKERS)
    ended, cleanup = _end_with_a_busy_worker(executor, wait_s=60)
    try:
        assert ended, "end() still waiting after 60 s"
        assert executor.workers == {}
    finally:
        cleanup()


def test_upstream_executor_hangs_in_the_same_scene() -> None:
    """The reason for the subclass: when this fails, Airflow fixed end() and the class can go."""
    # 10 s: five times what the project executor needs here.
    ended, cleanup = _end_with_a_busy_worker(local_executor.LocalExecutor(parallelism=WORKERS), wait_s=10)
    cleanup()
    assert not ended, "upstream's end() returned: Airflow fixed it, plugins/sentiment_executor.py can go"
