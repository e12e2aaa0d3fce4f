"""Airflow 3.3.2's LocalExecutor with a shutdown that always ends.

``AIRFLOW__CORE__EXECUTOR=sentiment_executor.LocalExecutor`` (compose's default, ``make secrets``'
.env and the stack's) selects it; Airflow puts ``plugins/`` on ``sys.path`` in every component, so
the module path resolves wherever the DAGs run.

Upstream's ``end()`` checks each worker's ``is_alive()`` and sends it a stop message (``None``) in
one loop. An idle worker takes the first message at once and exits, so by the time the loop
reaches it, it is dead and gets no message of its own: one message short per such worker, and the
last idle worker waits on the queue forever while ``end()`` joins it. Seen here as ``airflow dags
test --use-executor`` idling after its run succeeded, and as a scheduler that stayed alive after
losing its database instead of exiting to be restarted (RELIABILITY.md). This version counts the
live workers first, then sends that many messages, and reads results while it joins, so a worker
blocked writing a result to a full pipe can finish (apache/airflow#67870).
"""

from __future__ import annotations

from airflow.executors import local_executor

# How often end() reads results while it waits for a worker.
_JOIN_POLL_S = 0.5


class LocalExecutor(local_executor.LocalExecutor):
    """LocalExecutor whose ``end()`` sends one stop message per live worker, counted beforehand."""

    def end(self) -> None:
        """Stop every worker once its running task, if any, has finished, then close the queues."""
        self.log.info("Shutting down LocalExecutor; waiting for running tasks to finish.")
        alive = [proc for proc in self.workers.values() if proc.is_alive()]
        for _ in alive:
            self.activity_queue.put(None)
        for proc in self.workers.values():
            while proc.is_alive():
                proc.join(timeout=_JOIN_POLL_S)
                self._read_results()
            proc.close()
        self.workers = {}
        self._read_results()
        self.activity_queue.close()
        self.result_queue.close()
