"""Housekeeping's side effects: what there is (:func:`take_inventory`) and carrying out a plan.

The plan is carried out in two phases, each safe to stop anywhere and run again:

* :func:`apply_moves`, under the promotion lock (so no champion moves meanwhile): archive the
  planned versions (a tag, then the stage), put back from ``trash/`` what a kept champion now
  references, and *rename* each condemned run folder into ``trash/<dag_id>/<run_id>``. A rename
  is atomic: a folder is either where it was or whole in the trash.
* :func:`apply_frees`, after it: each trashed folder is renamed into ``trash/.purging/`` and only
  then deleted, so a half-deleted folder is never restored; then the preprocess cache is
  compacted (each table replaced atomically).

A pass that stops midway leaves whole folders in ``trash/`` and partial ones in
``trash/.purging/``. The next pass deletes the latter first, then plans again: what is in the
trash is deleted, unless a kept champion references it, which puts it back.
"""

from __future__ import annotations

import logging
import os
import shutil
import warnings
from collections.abc import Callable, Mapping
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from review_sentiment import ledger, names
from review_sentiment.config import HOUSEKEEPING_EXPERIMENT
from review_sentiment.housekeeping_plan import (
    ARCHIVED,
    RUN_DAGS,
    Inventory,
    Plan,
    Policy,
    Report,
    RunFolder,
    Version,
)
from review_sentiment.layout import SNAPSHOT_NAME, ArtifactLayout

log = logging.getLogger(__name__)

PURGING = ".purging"  # under trash/: folders being deleted, never restored
Step = Callable[[str], None]  # told each action once it is done


def _measure(folder: Path) -> tuple[int, float]:
    """Bytes of the files under ``folder`` and the newest modification time of it or anything in
    it (symbolic links counted as links, never followed)."""
    size, newest = 0, folder.lstat().st_mtime
    for base, dirs, files in os.walk(folder):
        for name in dirs + files:
            try:
                stat = os.lstat(os.path.join(base, name))
            except FileNotFoundError:  # removed while we looked
                continue
            newest = max(newest, stat.st_mtime)
            if name in files:
                size += stat.st_size
    return size, newest


def scan_folders(layout: ArtifactLayout) -> tuple[RunFolder, ...]:
    """The run folders of :data:`RUN_DAGS`, live and in ``trash/``, measured."""
    found = []
    for base, trashed in ((layout.root, False), (layout.trash, True)):
        for dag_id in RUN_DAGS:
            dag_dir = base / dag_id
            if not dag_dir.is_dir() or dag_dir.is_symlink():
                continue
            for run in sorted(dag_dir.iterdir()):
                if not run.is_dir() or run.is_symlink():
                    continue
                size, newest = _measure(run)
                snapshots = tuple(
                    f"{dag_id}/{run.name}/{p.parent.name}/{p.name}"
                    for p in sorted(run.glob(f"*/{SNAPSHOT_NAME}"))
                )
                when = datetime.fromtimestamp(newest, UTC)
                found.append(RunFolder(f"{dag_id}/{run.name}", size, when, snapshots, trashed))
    return tuple(found)


def _versions(mlflow_client: Any, model_name: str) -> tuple[Version, ...]:
    found, token = [], None
    while True:
        page = mlflow_client.search_model_versions(f"name = '{model_name}'", page_token=token)
        found += [
            Version(
                str(v.version),
                datetime.fromtimestamp(v.creation_timestamp / 1000, UTC),
                str(v.current_stage or "None"),
                dict(v.tags or {}),
            )
            for v in page
        ]
        token = getattr(page, "token", None)
        if not token:
            return tuple(found)


def take_inventory(
    layout: ArtifactLayout, mlflow_client: Any, model_name: str, now: datetime | None = None
) -> Inventory:
    """The run folders under the artifact root, and the model's versions, ledger and aliases
    (none of them for a model not registered yet)."""
    from mlflow.exceptions import MlflowException

    folders = scan_folders(layout)
    try:
        model = mlflow_client.get_registered_model(model_name)
    except MlflowException:
        return Inventory(now or datetime.now(UTC), str(layout.root), folders, (), (), {})
    return Inventory(
        now=now or datetime.now(UTC),
        root=str(layout.root),
        folders=folders,
        versions=_versions(mlflow_client, model_name),
        entries=tuple(ledger.parse_ledger(model.tags or {})),
        aliases={str(k): str(v) for k, v in (model.aliases or {}).items()},
    )


def archive_version(mlflow_client: Any, model_name: str, version: str, why: str) -> None:
    """Move ``version`` to stage Archived, with a tag saying when and why.

    Stages are deprecated since MLflow 2.9 (each call warns FutureWarning) but MLflow 3 has no
    other "archived": it is what the registry UI shows and what rollback.py refuses without
    force. The tag is what the migration guide recommends instead, so it outlives stages.
    """
    stamp = datetime.now(UTC).replace(microsecond=0).isoformat()
    mlflow_client.set_model_version_tag(model_name, version, names.TAG_ARCHIVED, f"{stamp} {why}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        mlflow_client.transition_model_version_stage(model_name, version, ARCHIVED)


def _rename(source: Path, target: Path) -> bool:
    """Rename a folder (False: the source is gone already)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(source, target)
    except FileNotFoundError:
        log.warning("housekeeping: %s is gone already", source)
        return False
    return True


def apply_moves(
    the_plan: Plan, layout: ArtifactLayout, mlflow_client: Any, model_name: str, report: Report, step: Step
) -> None:
    """Archive, restore from the trash, and rename condemned folders into it (under the lock)."""
    for version in the_plan.archive:
        archive_version(
            mlflow_client, model_name, version, "housekeeping: never champion, past the retention"
        )
        report.versions_archived.append(version)
        step(f"archived v{version}")
    for folder in the_plan.restore:
        live, trashed = layout.root / folder.key, layout.trash / folder.key
        if live.exists():  # a copy is back in place already: the trashed one is a duplicate
            log.warning("housekeeping: %s exists; its copy in the trash is deleted instead", live)
            _rename(trashed, layout.trash / PURGING / folder.key)
        elif _rename(trashed, live):
            report.folders_restored += 1
        step(f"restored {folder.key}")
    for folder in the_plan.delete:
        _rename(layout.root / folder.key, layout.trash / folder.key)
        step(f"moved {folder.key} to the trash")


def _delete(folder: Path, report: Report) -> None:
    size, _ = _measure(folder)
    shutil.rmtree(folder)
    report.bytes_freed += size
    report.folders_deleted += 1


def apply_frees(the_plan: Plan, layout: ArtifactLayout, report: Report, step: Step) -> None:
    """Delete what is in the trash (through ``.purging``), then compact the preprocess cache."""
    from review_sentiment.preprocess_cache import compact_cache, snapshot_keys

    purging = layout.trash / PURGING
    for folder in the_plan.delete + the_plan.purge:
        _rename(layout.trash / folder.key, purging / folder.key)
    # Whatever is there: this pass's folders, and what an interrupted pass left half-deleted.
    for dag_dir in sorted(purging.iterdir()) if purging.is_dir() else []:
        for run in sorted(dag_dir.iterdir()):
            _delete(run, report)
            step(f"deleted {dag_dir.name}/{run.name}")
        dag_dir.rmdir()
    snapshots = [layout.root / s for s in the_plan.snapshots if (layout.root / s).is_file()]
    report.cache_bytes_freed, report.cache_entries_dropped = compact_cache(
        layout.preprocess_cache, snapshot_keys(snapshots)
    )
    step("compacted the preprocess cache")


def start_run(mlflow_client: Any, tracking_uri: str, policy: Policy, tags: Mapping[str, str]) -> str:
    """A RUNNING run of the housekeeping experiment, with the policy as params; its id."""
    from review_sentiment.tracking import ensure_experiment

    experiment_id = ensure_experiment(HOUSEKEEPING_EXPERIMENT, tracking_uri)
    run = mlflow_client.create_run(experiment_id, tags=dict(tags), run_name="housekeeping")
    for key, value in asdict(policy).items():
        mlflow_client.log_param(run.info.run_id, key, value)
    return run.info.run_id


def finish_run(mlflow_client: Any, run_id: str | None, the_plan: Plan, report: Report) -> None:
    """What the pass freed, as metrics, and its plan, as an artifact; the run ends FINISHED."""
    from mlflow.entities import Metric

    if run_id is None:
        return
    stamp = int(datetime.now(UTC).timestamp() * 1000)
    figures = {
        "bytes_freed": report.bytes_freed + report.cache_bytes_freed,
        "folder_bytes_freed": report.bytes_freed,
        "cache_bytes_freed": report.cache_bytes_freed,
        "cache_entries_dropped": report.cache_entries_dropped,
        "folders_deleted": report.folders_deleted,
        "folders_restored": report.folders_restored,
        "versions_archived": len(report.versions_archived),
    }
    metrics = [Metric(key, float(value), stamp, 0) for key, value in figures.items()]
    mlflow_client.log_batch(run_id, metrics=metrics)
    mlflow_client.log_dict(run_id, the_plan.to_dict(), "housekeeping/plan.json")
    mlflow_client.set_terminated(run_id, status="FINISHED")
