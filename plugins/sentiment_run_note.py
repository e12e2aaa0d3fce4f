"""The week's outcome on the DAG run itself: a listener writes it as the run's note, so the runs
list says "kept champion v3: ..." or "promoted v4: ..." without opening a task.

A task cannot set its run's note (Airflow 3's Execution API has no call for it), so this runs where
the run's state changes: in the scheduler (or in ``airflow dags test``), inside the session that
records the new state. It reads the return value of ``promote`` or ``keep_champion`` (a
``RegisterResult``) from XCom. A failed run's note names the failed tasks. Errors here are logged
by Airflow's listener manager and never change the run's state.
"""

from __future__ import annotations

from typing import Any

from airflow.listeners import hookimpl
from airflow.plugins_manager import AirflowPlugin

from review_sentiment.config import RETRAIN_DAG_ID
from review_sentiment.task_ids import OUTCOME_TASKS


def _outcome(dag_run: Any, session: Any) -> dict[str, Any] | None:
    from airflow.models.xcom import XComModel

    query = XComModel.get_many(
        run_id=dag_run.run_id, key="return_value", dag_ids=dag_run.dag_id, task_ids=OUTCOME_TASKS, limit=1
    )
    row = session.scalars(query).first()
    value = XComModel.deserialize_value(row) if row is not None else None
    return value if isinstance(value, dict) else None


def _failed_tasks(dag_run: Any, session: Any) -> list[str]:
    # The session passed on: without it, Airflow would open and close the thread's scoped session,
    # detaching the run this listener writes to.
    return sorted(
        ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"
        for ti in dag_run.get_task_instances(state=["failed"], session=session)
    )


def _note(dag_run: Any, session: Any, failed: bool) -> str | None:
    from review_sentiment.decision import RegisterResult

    outcome = _outcome(dag_run, session)
    if outcome is not None:
        return RegisterResult.from_dict(outcome).note()
    if failed:
        return f"**failed** at {', '.join(_failed_tasks(dag_run, session)) or 'an unknown task'}: see its log"
    return None


def _write_note(dag_run: Any, failed: bool) -> None:
    from sqlalchemy.orm import object_session

    if dag_run.dag_id != RETRAIN_DAG_ID:
        return
    session = object_session(dag_run)
    if session is not None:
        # The scheduler's session, which holds the run's row lock: write through it (a second
        # session would wait for that lock while the scheduler waits for this listener).
        text = _note(dag_run, session, failed)
        if text:
            dag_run.note = text
        return
    # ``airflow dags test`` hands over a detached run: write through a session of our own.
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as own:
        attached = own.scalar(
            select(DagRun).where(DagRun.dag_id == dag_run.dag_id, DagRun.run_id == dag_run.run_id)
        )
        text = _note(attached, own, failed) if attached is not None else None
        if text:
            attached.note = text


class _RunNoteListener:
    @hookimpl
    def on_dag_run_success(self, dag_run: Any, msg: str) -> None:
        _write_note(dag_run, failed=False)

    @hookimpl
    def on_dag_run_failed(self, dag_run: Any, msg: str) -> None:
        _write_note(dag_run, failed=True)


class SentimentRunNotePlugin(AirflowPlugin):
    """Writes the retraining week's outcome as its DAG run's note."""

    name = "sentiment_run_note"
    listeners: list[Any] = [_RunNoteListener()]  # noqa: RUF012 - Airflow reads the class attribute
