"""The retrain DAG's approval step: a Human-in-the-loop branch between the gate and promote.

Not a DAG file (see .airflowignore); imports only what the DAG file may import at parse time.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.providers.standard.operators.hitl import HITLBranchOperator
from sentiment_mail import send

from review_sentiment import names, task_ids
from review_sentiment.config import Settings


class Approval(HITLBranchOperator):
    """A human approves the promotion of what the gate passed: Approve runs ``promote``; Reject,
    or no answer within the ``approval_timeout_hours`` param, runs ``keep_champion``. The form
    shows the week's scores and links (``review_sentiment.approval``), built when the task runs,
    from ``register``'s result; the approvers get a mail when it starts waiting."""

    def __init__(self, *, register_task: str, **kwargs: Any) -> None:
        from review_sentiment import approval

        super().__init__(
            subject="Promote the new version to champion?",
            options=list(approval.OPTIONS),
            defaults=[approval.REJECT],
            options_mapping={approval.APPROVE: task_ids.PROMOTE, approval.REJECT: task_ids.KEEP_CHAMPION},
            # Replaced from the param when the task runs; given here so that the default
            # execution_timeout (the execution phase, before the wait) is not taken for it.
            response_timeout=timedelta(hours=approval.DEFAULT_TIMEOUT_HOURS),
            **kwargs,
        )
        self.register_task = register_task

    def execute(self, context: Any) -> Any:
        from review_sentiment.approval import request
        from review_sentiment.notify import from_result

        result = context["ti"].xcom_pull(task_ids=self.register_task)
        settings = Settings.from_env()
        self.subject, self.body = request(result, settings)
        # A param, so it is read when the task runs, not when the DAG is parsed.
        self.response_timeout = timedelta(hours=float(context["params"]["approval_timeout_hours"]))
        ti = context["ti"]
        send(from_result("approval", result, ti.dag_id, ti.run_id), settings, context)
        return super().execute(context)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        """Keep who answered (an XCom of its own: the return value is the branch taken), so that
        ``promote`` records the approver in the champion ledger."""
        user = event.get("responded_by_user") if isinstance(event, dict) else None
        if user:
            name = user.get("name") or user.get("id") if isinstance(user, dict) else str(user)
            context["ti"].xcom_push(key=names.XCOM_RESPONDER, value=name)
        return super().execute_complete(context, event)
