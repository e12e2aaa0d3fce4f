"""Retention: delete old run folders, compact the preprocess cache, archive stale challengers.

One pass (:func:`housekeeping`), run by ``python -m review_sentiment housekeeping [--dry-run]``
and the weekly DAG ``sentiment_housekeeping``: the plan is pure (``housekeeping_plan``), the
executor carries it out (``housekeeping_apply``); what is kept and why is in
``housekeeping_plan``'s docstring.
"""

from __future__ import annotations

import contextlib
import getpass
import logging
from collections.abc import Callable, Mapping
from dataclasses import fields
from datetime import datetime
from typing import Any

from review_sentiment.config import Settings
from review_sentiment.housekeeping_apply import (
    apply_frees,
    apply_moves,
    finish_run,
    start_run,
    take_inventory,
)
from review_sentiment.housekeeping_plan import TAG_RUN_BY, Policy, Report, plan

log = logging.getLogger(__name__)


def housekeeping(
    settings: Settings | None = None,
    policy: Policy | None = None,
    *,
    dry_run: bool = False,
    now: datetime | None = None,
    tags: Mapping[str, str] | None = None,
    step: Callable[[str], None] | None = None,
) -> Report:
    """One housekeeping pass: take the inventory and plan under the promotion lock, archive and
    move condemned run folders to the trash there, then delete them and compact the cache.

    Logged as a run of the ``sentiment-housekeeping`` experiment (its policy as params, what it
    freed as metrics, the plan as ``housekeeping/plan.json``); a dry run logs nothing and changes
    nothing. Safe to stop anywhere and run again (``housekeeping_apply``).

    Args:
        settings: Artifact root, tracking URI, model and lock (default: the environment's).
        policy: How much to keep (default: the package's).
        dry_run: Plan only; the report carries the plan's lines.
        now: The time ages are measured from (default: now).
        tags: Tags of the MLflow run (the Airflow task instance's).
        step: Told each action once it is done (the executor's progress).
    """
    from review_sentiment.promotion import promotion_lock
    from review_sentiment.tracking import client

    settings, policy = settings or Settings.from_env(), policy or Policy()
    mlflow_client, layout, step = client(settings.tracking_uri), settings.layout, step or _log_step
    run_id = None if dry_run else start_run(mlflow_client, settings.tracking_uri, policy, tags or {})
    try:
        lock = promotion_lock(
            settings.model_name, lock_uri=settings.lock_target(), timeout=settings.lock_timeout_s
        )
        with contextlib.nullcontext() if dry_run else lock:
            inventory = take_inventory(layout, mlflow_client, settings.model_name, now)
            the_plan = plan(inventory, policy)
            log.info("housekeeping plan:\n%s", "\n".join(the_plan.lines()))
            report = Report(
                dry_run, list(the_plan.kept_champions), plan=the_plan.lines(), mlflow_run_id=run_id
            )
            if dry_run:
                return report
            apply_moves(the_plan, layout, mlflow_client, settings.model_name, report, step)
        apply_frees(the_plan, layout, report, step)
    except BaseException:
        if run_id is not None:  # best effort: the error that stopped the pass is the one to see
            with contextlib.suppress(Exception):
                mlflow_client.set_terminated(run_id, status="FAILED")
        raise
    finish_run(mlflow_client, run_id, the_plan, report)
    log.info("%s", report.summary())
    return report


def _log_step(done: str) -> None:
    log.info("housekeeping: %s", done)


def cli_arguments(parser: Any, settings: Settings) -> None:
    """The flags of ``python -m review_sentiment housekeeping``: ``--dry-run`` and one per
    :class:`Policy` field (``--keep-weeks``, ``--challenger-weeks``, ``--keep-champions``)."""
    parser.add_argument("--dry-run", action="store_true", help="print the plan; change nothing")
    for f in fields(Policy):
        flag = "--" + f.name.replace("_", "-")
        parser.add_argument(
            flag,
            type=int,
            metavar="N",
            default=f.default,
            help=f"{f.metadata['help']} (default: %(default)s)",
        )


def cli_run(args: Any, settings: Settings) -> str:
    """Run ``python -m review_sentiment housekeeping``: the plan's lines, then the summary."""
    policy = Policy(**{f.name: getattr(args, f.name) for f in fields(Policy)})
    report = housekeeping(settings, policy, dry_run=args.dry_run, tags={TAG_RUN_BY: getpass.getuser()})
    return "\n".join([*report.plan, report.summary()])
