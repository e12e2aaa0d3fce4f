"""The three logins of .env on the local stack (FAB auth manager; airflow-init makes them), through
Airflow's REST API with each one's own JWT from /auth/token: the viewer reads but may neither
trigger nor approve; the operator triggers a run and answers its approval, but may not delete runs
or read connections.

One run that asks for approval (``test_lifecycle.APPROVAL``, the smallest conf that reaches the
question), rejected by the operator, so the champion does not move for the tests after it.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.stack.airflow_api import DAG_ID, AirflowApi, FinishedRun
from tests.stack.conftest import RunningStack, report
from tests.stack.test_lifecycle import APPROVAL, _approval_waiting, _champion, _ran, approval_run

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def _login(running_stack: RunningStack, who: str) -> AirflowApi:
    """An API client with ``who``'s JWT (``admin``, ``operator`` or ``viewer`` of .env)."""
    secrets = running_stack.secrets
    key = f"AIRFLOW_{who.upper()}"
    return AirflowApi(running_stack.stack.airflow_url, secrets[f"{key}_USERNAME"], secrets[f"{key}_PASSWORD"])


def _status(api: AirflowApi, method: str, path: str, body: dict[str, Any] | None = None) -> int:
    """The HTTP status of one call (the client's ``request`` fails on anything but 2xx)."""
    return api.session.request(method, f"{api.base_url}/api/v2{path}", json=body, timeout=30).status_code


def test_the_viewer_reads_but_may_not_trigger(running_stack: RunningStack) -> None:
    viewer = _login(running_stack, "viewer")
    assert viewer.dag()["dag_id"] == DAG_ID  # a valid login that may read
    trigger = {"logical_date": None, "conf": APPROVAL}
    assert _status(viewer, "POST", f"/dags/{DAG_ID}/dagRuns", trigger) == 403
    assert _status(viewer, "PATCH", f"/dags/{DAG_ID}", {"is_paused": True}) == 403
    assert not viewer.dag()["is_paused"]


def test_the_operator_triggers_and_answers_an_approval_the_viewer_may_not(
    rest_run: FinishedRun, running_stack: RunningStack, pytestconfig: pytest.Config
) -> None:
    operator, viewer = _login(running_stack, "operator"), _login(running_stack, "viewer")
    # No delete (FAB's User role could) and no connections or variables (secrets).
    assert _status(operator, "DELETE", f"/dags/{DAG_ID}/dagRuns/no-such-run") == 403
    assert _status(operator, "GET", "/connections") == 403
    assert _status(operator, "GET", "/variables") == 403
    champion = _champion(running_stack)
    with approval_run(running_stack, APPROVAL, trigger_as=operator) as run_id:  # the operator's trigger
        _approval_waiting(running_stack, run_id)
        path = f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/approval/-1/hitlDetails"
        answer = {"chosen_options": ["Reject"], "params_input": {}}
        assert _status(viewer, "PATCH", path, answer) == 403
        assert viewer.get(path)["chosen_options"] is None, "the viewer's refused answer was recorded"
        operator.request("PATCH", path, json=answer)
        finished = running_stack.api.wait_for_run(run_id)
    hitl = running_stack.api.get(path)
    assert hitl["chosen_options"] == ["Reject"], hitl
    assert hitl["responded_by_user"]["name"] == running_stack.secrets["AIRFLOW_OPERATOR_USERNAME"], hitl
    assert finished.state == "success", finished.states()
    assert (_ran(finished, "keep_champion"), _ran(finished, "promote")) == ("success", "skipped")
    assert _champion(running_stack) == champion
    report(pytestconfig, f"stack: the operator triggered and answered an approval: {finished.timings()}")
