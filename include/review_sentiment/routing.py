"""Which way a week goes after ``register`` and the smoke check: one pure rule, read by the
retraining DAG's ``decide`` (the branch) and by ``keep_champion`` (the outcome it records).

In order:

1. the gate refused: keep the champion (``gate_refused``, outcome ``kept``);
2. the smoke check failed (or did not run): keep it (``smoke_failed``, outcome ``smoke_failed``),
   also when the run forces promotion: force overrides the gate's judgement of the scores, never
   a version that does not load or score right;
3. the week drifted (``RegisterResult.drift``) and the run does not force: the approval if the
   run asks for one, else keep the champion (``drifted``, outcome ``drift``);
4. otherwise promote: through the approval if the run asks for one, else straight (``gate_passed``).

Plain data in and out (the XCom dicts of ``register`` and ``smoke_check``): no Airflow, no MLflow.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from review_sentiment import names, task_ids

__all__ = ["Route", "needs_smoke_check", "route"]


@dataclass(frozen=True)
class Route:
    """Where the week goes.

    ``way`` is the task id ``decide`` branches to; ``outcome`` the outcome ``keep_champion``
    records on that way (None where a promotion is possible: ``gate_passed`` or the approval,
    whose Reject records ``kept``); ``reason`` says why, for the version's tags, note and mail.
    """

    way: str
    outcome: str | None
    reason: str

    @property
    def keeps(self) -> bool:
        """Whether this way keeps the champion without asking anyone."""
        return self.outcome is not None


def needs_smoke_check(result: Mapping[str, Any], *, forced: bool) -> bool:
    """Whether the week's version could be promoted, so must be smoke-checked: the gate passed
    it, or the run forces its promotion."""
    return bool(result.get("passed")) or forced


def route(
    result: Mapping[str, Any], smoke: Mapping[str, Any] | None, *, forced: bool, require_approval: bool
) -> Route:
    """The week's way (see the module docstring for the order of the rules).

    Args:
        result: ``register``'s result (a ``RegisterResult`` as a dict): ``passed``, ``reason``
            and, once the drift check reports it there, ``drift`` (the reason; "" for none).
        smoke: The smoke check's result (``smoke.SmokeResult.to_dict``), or None if none ran.
        forced: The run forces promotion (the ``force_promote`` param).
        require_approval: The run asks a human before promoting (the ``require_approval`` param).

    Returns:
        The branch to take, the outcome it records if it keeps the champion, and why.
    """
    if not result.get("passed") and not forced:
        return Route(task_ids.GATE_REFUSED, names.OUTCOME_KEPT, str(result.get("reason", "")))
    if smoke is None or not smoke.get("passed"):
        why = (smoke or {}).get("reason") or "the smoke check did not run"
        return Route(task_ids.SMOKE_FAILED, names.OUTCOME_SMOKE_FAILED, f"smoke check failed: {why}")
    drift = str(result.get("drift") or "")
    if drift and not forced:
        if require_approval:
            return Route(task_ids.APPROVAL, None, f"drift, approval asked: {drift}")
        return Route(task_ids.DRIFTED, names.OUTCOME_DRIFT, f"drift: {drift}")
    way = task_ids.APPROVAL if require_approval else task_ids.GATE_PASSED
    return Route(way, None, str(result.get("reason", "")))
