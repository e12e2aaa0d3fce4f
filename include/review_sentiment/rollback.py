"""Rollback: move ``champion`` back to an earlier version, by hand, with a reason.

``python -m review_sentiment rollback --to VERSION --reason TEXT [--force]`` and the manual DAG
``sentiment_rollback`` both call :func:`rollback`. Under the promotion lock (``promotion.py``) it
picks the target (given, else the champion before the current one in the ledger), refuses a
version that cannot serve as champion (:class:`RollbackRefused`, nothing moved), and moves the
alias through the ledger (``ledger.py``), which records the move first. A rollback to the version
that is already champion moves nothing and writes no entry.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

from review_sentiment import ledger, names, versions
from review_sentiment.config import CHAMPION_ALIAS, Settings
from review_sentiment.errors import PipelineError
from review_sentiment.tracking import client

log = logging.getLogger(__name__)

OUTCOME_ROLLED_BACK = names.OUTCOME_ROLLED_BACK
OUTCOME_UNCHANGED = "unchanged"
_READY = "READY"


class RollbackRefused(PipelineError):
    """The rollback's target cannot be champion (missing, deleted, archived, never passed a gate)
    or was not given and the ledger does not name one; nothing moved."""


@dataclass(frozen=True)
class RollbackResult:
    """What a rollback did; small enough for XCom (the keys the champion event and mail read)."""

    model_name: str
    version: str  # the target
    champion_version: str | None  # the champion before the rollback
    outcome: str  # rolled_back, or unchanged (the target already was champion)
    reason: str
    forced: bool = False
    reused: bool = False  # an earlier try of this DAG run moved it
    ledger_entry: int | None = None
    by: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        """One line: what moved (or why nothing did)."""
        if self.outcome == OUTCOME_UNCHANGED:
            return f"v{self.version} already is {self.model_name} {CHAMPION_ALIAS}: nothing moved"
        before = f"v{self.champion_version}" if self.champion_version else "no champion"
        forced = " (forced)" if self.forced else ""
        return (
            f"rolled back {self.model_name} {CHAMPION_ALIAS} from {before} to v{self.version}{forced}, "
            f"ledger entry #{self.ledger_entry}: {self.reason}"
        )


def check_target(version: Any, *, force: bool) -> None:
    """Refuse a version that cannot be champion: not ready, archived, never passed a gate, or
    failed its smoke check (all but the first unless ``force``).

    Raises:
        RollbackRefused: with the reason.
    """
    name = f"version {version.version}"
    status = str(getattr(version, "status", _READY) or _READY)
    if status != _READY:
        raise RollbackRefused(f"{name} is not ready to serve (status {status})")
    if force:
        return
    if getattr(version, "current_stage", None) == names.STAGE_ARCHIVED:
        raise RollbackRefused(f"{name} is archived; pass force to roll back to it anyway")
    decision = (version.tags or {}).get(names.TAG_DECISION)
    if decision != names.DECISION_PASSED:
        raise RollbackRefused(
            f"{name} never passed a gate ({names.TAG_DECISION} is {decision or 'missing'}); "
            "pass force to roll back to it anyway"
        )
    smoke = (version.tags or {}).get(names.TAG_SMOKE_PASSED)
    if smoke == "false":
        reason = (version.tags or {}).get(names.TAG_SMOKE_REASON, "")
        raise RollbackRefused(
            f"{name} failed its smoke check ({reason}); pass force to roll back to it anyway"
        )


def _target(to_version: str | None, entries: list[ledger.Entry], champion: Any) -> str:
    """The version to roll back to: the one given, else the champion before the current one."""
    if to_version is not None and str(to_version).strip():
        text = str(to_version).strip().removeprefix("v")
        if not text.isdigit():
            raise RollbackRefused(f"{to_version!r} is not a model version number")
        return str(int(text))
    if champion is None:
        raise RollbackRefused(f"there is no {CHAMPION_ALIAS} to roll back from; name the version")
    previous = ledger.previous_champion(entries, str(champion.version))
    # A champion promoted before the ledger existed: its register compared it with the one before.
    previous = previous or champion.tags.get(names.TAG_CHAMPION_VERSION)
    if not previous or previous == "none":
        raise RollbackRefused(
            f"the ledger names no {CHAMPION_ALIAS} before v{champion.version}; name the version to restore"
        )
    return str(previous)


def _get_version(mlflow_client: Any, model_name: str, version: str) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        return mlflow_client.get_model_version(model_name, version)
    except MlflowException:
        raise RollbackRefused(
            f"version {version} of {model_name} does not exist (never registered, or deleted)"
        ) from None


def rollback(
    to_version: str | None,
    reason: str,
    *,
    settings: Settings | None = None,
    force: bool = False,
    pipeline_run_id: str | None = None,
    by: str | None = None,
) -> RollbackResult:
    """Move ``champion`` back to ``to_version`` (None: the champion before the current one in the
    ledger) under the promotion lock, recording the move in the ledger.

    Idempotent: if the target already is champion, nothing moves and no entry is written (a
    retried DAG task whose first try moved it finds that try's entry and says so, ``reused``).

    Args:
        to_version: The version to restore; None or empty for the previous champion.
        reason: Why (required; recorded in the ledger).
        settings: Tracking URI, model name and lock (default: the environment's).
        force: Roll back to an archived version or one that never passed a gate.
        pipeline_run_id: ``<dag_id>/<run_id>`` of the DAG run (None: the shell).
        by: Who asked for it.

    Raises:
        RollbackRefused: no reason, no target, or a target that cannot be champion.
    """
    from review_sentiment.promotion import promotion_lock

    if not reason or not reason.strip():
        raise RollbackRefused("a rollback needs a reason (it is recorded in the champion ledger)")
    settings = settings or Settings.from_env()
    mlflow_client, model_name = client(settings.tracking_uri), settings.model_name
    with promotion_lock(model_name, lock_uri=settings.lock_target(), timeout=settings.lock_timeout_s):
        entries = ledger.read_ledger(mlflow_client, model_name)
        champion = versions.champion_version(mlflow_client, model_name)
        current = None if champion is None else str(champion.version)
        target = _target(to_version, entries, champion)
        check_target(_get_version(mlflow_client, model_name, target), force=force)
        result = RollbackResult(model_name, target, current, OUTCOME_UNCHANGED, reason, force, by=by)
        if target == current:
            done = ledger.find_entry(entries, pipeline_run_id, target) if pipeline_run_id else None
            if done is None or done.kind != ledger.KIND_ROLLBACK:
                log.info("rollback: %s", result.summary())
                return result
            # An earlier try of this DAG run moved it: report that move again (its event, its mail).
            return RollbackResult(model_name, target, done.from_version, OUTCOME_ROLLED_BACK, done.reason,
                                  force, reused=True, ledger_entry=done.seq, by=done.by)  # fmt: skip
        text = f"{reason.strip()} (forced)" if force else reason.strip()
        move = ledger.Move(current, target, pipeline_run_id, text, ledger.KIND_ROLLBACK, by)
        entry, _ = ledger.move_champion(mlflow_client, model_name, move)
    done = RollbackResult(model_name, target, entry.from_version, OUTCOME_ROLLED_BACK, entry.reason, force,
                          ledger_entry=entry.seq, by=entry.by)  # fmt: skip
    log.info("rollback: %s", done.summary())
    return done
