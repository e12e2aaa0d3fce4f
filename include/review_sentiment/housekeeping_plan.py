"""Retention's plan (pure): what a housekeeping pass deletes, compacts and archives, and why.

``python -m review_sentiment housekeeping [--dry-run]`` and the weekly DAG
``sentiment_housekeeping`` call :func:`review_sentiment.housekeeping.housekeeping`. It plans,
then applies:

* :func:`plan` is pure: from an :class:`Inventory` (the run folders under the artifact root with
  their sizes and ages, the registered versions, the champion ledger) and a :class:`Policy` it
  decides what goes and what stays, and why. ``--dry-run`` prints that plan and stops.
* The executor (``housekeeping_apply``) carries it out: archived versions, run folders renamed
  into ``trash/`` and then deleted, the cache compacted to the reviews still present.

What is kept, whatever its age: the champion, the last K champions of the ledger and every run
folder they reference (the version tags ``pipeline_run_id`` and ``training.snapshot``), the
folders of any version an alias points at, and everything outside the DAGs' run folders
(``cache/`` is compacted, never deleted; ``state/`` and ``locks/`` are not touched). MLflow
artifacts (seen-review records, reference distributions, models) are never deleted: archiving
is a stage change. A run folder's age is the time since anything in it was last written (its
newest modification time), so a folder still being written, copied back or touched is young.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import PurePosixPath
from typing import Any

from review_sentiment import ledger, names
from review_sentiment.config import (
    CHAMPION_ALIAS,
    DEFAULT_KEEP_CHALLENGER_WEEKS,
    DEFAULT_KEEP_CHAMPIONS,
    DEFAULT_KEEP_RUN_WEEKS,
    HOUSEKEEPING_DAG_ID,
    RETRAIN_DAG_ID,
    ROLLBACK_DAG_ID,
    SCORE_DAG_ID,
)

log = logging.getLogger(__name__)

# The only top-level folders whose <run_id>/ subfolders housekeeping deletes; anything else
# under the artifact root (cache/, state/, locks/, a folder it does not know) is not its to delete.
RUN_DAGS = (RETRAIN_DAG_ID, SCORE_DAG_ID, ROLLBACK_DAG_ID, HOUSEKEEPING_DAG_ID)
ARCHIVED = names.STAGE_ARCHIVED
TAG_RUN_BY = "housekeeping.by"  # on the MLflow run of a pass started from the shell: who


@dataclass(frozen=True)
class Policy:
    """How much to keep."""

    keep_weeks: int = field(
        default=DEFAULT_KEEP_RUN_WEEKS,
        metadata={"help": "delete run folders last written more than N weeks ago"},
    )
    challenger_weeks: int = field(
        default=DEFAULT_KEEP_CHALLENGER_WEEKS,
        metadata={"help": "archive versions older than N weeks that never were champion"},
    )
    keep_champions: int = field(
        default=DEFAULT_KEEP_CHAMPIONS,
        metadata={"help": "the newest K champions of the ledger keep every run folder they reference"},
    )

    def __post_init__(self) -> None:
        for name in ("keep_weeks", "challenger_weeks", "keep_champions"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"housekeeping {name} must be a whole number >= 1, got {value!r}")


@dataclass(frozen=True)
class RunFolder:
    """One run folder, ``<dag_id>/<run_id>`` under the artifact root (or under ``trash/``)."""

    key: str  # <dag_id>/<run_id>
    size: int  # bytes
    modified: datetime  # the newest modification time of anything in it
    snapshots: tuple[str, ...] = ()  # its ingest snapshots, relative to the artifact root
    trashed: bool = False  # renamed into trash/ by a pass that did not finish


@dataclass(frozen=True)
class Version:
    """One registered version, as the plan needs it."""

    version: str
    created: datetime
    stage: str = "None"
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Inventory:
    """What there is: the input of :func:`plan`."""

    now: datetime
    root: str  # the artifact root, to read absolute paths in tags
    folders: tuple[RunFolder, ...]
    versions: tuple[Version, ...]
    entries: tuple[ledger.Entry, ...]
    aliases: Mapping[str, str]  # alias -> version


@dataclass(frozen=True)
class Plan:
    """What a pass deletes, restores, archives and keeps, and why."""

    kept_champions: tuple[str, ...]  # newest first; the current champion first
    protected: Mapping[str, str]  # run folder -> why it stays whatever its age
    delete: tuple[RunFolder, ...]  # live folders: renamed into trash/, then deleted
    purge: tuple[RunFolder, ...]  # already in trash/ (an interrupted pass): deleted
    restore: tuple[RunFolder, ...]  # in trash/ but a kept champion references them: put back
    archive: tuple[str, ...]  # versions to move to stage Archived
    snapshots: tuple[str, ...]  # the kept run folders' snapshots: the reviews the cache keeps
    kept_folders: int = 0

    @property
    def bytes_to_free(self) -> int:
        return sum(f.size for f in (*self.delete, *self.purge))

    def lines(self) -> list[str]:
        """The plan for a reader (``--dry-run``), one action per line."""
        champions = ", ".join(f"v{v}" for v in self.kept_champions) or "none"
        out = [f"kept champions: {champions}"]
        out += [f"keep {key}: {why}" for key, why in sorted(self.protected.items())]
        out += [f"delete {f.key} ({_mb(f.size)}, last written {f.modified:%Y-%m-%d})" for f in self.delete]
        out += [f"finish deleting {f.key} ({_mb(f.size)}, in trash)" for f in self.purge]
        out += [f"restore {f.key} from trash: {self.protected.get(f.key, '')}" for f in self.restore]
        out += [f"archive v{v} (never champion)" for v in self.archive]
        out.append(f"compact the preprocess cache to the reviews of {len(self.snapshots)} kept snapshot(s)")
        out.append(
            f"{len(self.delete) + len(self.purge)} run folder(s) to delete ({_mb(self.bytes_to_free)}), "
            f"{self.kept_folders} kept, {len(self.archive)} version(s) to archive"
        )
        return out

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


def champions_to_keep(inventory: Inventory, keep: int) -> tuple[str, ...]:
    """The current champion, then the newest ``keep`` distinct champions of the ledger; if the
    ledger names fewer (a model promoted before it existed), former champions known by their
    version tags fill up, newest version first."""
    current = inventory.aliases.get(CHAMPION_ALIAS)
    newest: list[str] = []
    for entry in reversed(inventory.entries):
        if entry.to_version not in newest:
            newest.append(entry.to_version)
    if len(newest) < keep:
        former = sorted((v.version for v in inventory.versions if _was_champion_by_tags(v)), key=int)
        newest += [v for v in reversed(former) if v not in newest]
    kept = [current] if current else []
    return tuple(kept + [v for v in newest[:keep] if v != current])


def _was_champion_by_tags(version: Version) -> bool:
    return version.tags.get(names.TAG_OUTCOME) == names.OUTCOME_PROMOTED or ledger.TAG_SINCE in version.tags


def ever_champion(inventory: Inventory) -> set[str]:
    """Every version that held ``champion`` as far as the registry can tell: moved to or from in
    the ledger, holding it now, tagged promoted or champion-since, or named as the champion a
    later version was compared with."""
    found = {e.to_version for e in inventory.entries} | {e.from_version for e in inventory.entries}
    found.add(inventory.aliases.get(CHAMPION_ALIAS))
    for v in inventory.versions:
        if _was_champion_by_tags(v):
            found.add(v.version)
        found.add(v.tags.get(names.TAG_CHAMPION_VERSION))
    return {str(v) for v in found if v}


def _references(version: Version, root: str) -> list[tuple[str, ...]]:
    """The artifact-root paths a version's tags name, as path parts (outside the root: none)."""
    refs = []
    for tag in (names.TAG_PIPELINE_RUN, names.TAG_TRAINING_SNAPSHOT):
        value = (version.tags.get(tag) or "").strip()
        path = PurePosixPath(value)
        if path.is_absolute():
            if not path.is_relative_to(root):
                continue
            path = path.relative_to(root)
        parts = tuple(p for p in path.parts if p not in ("", "."))
        if parts and ".." not in parts:
            refs.append(parts)
    return refs


def protected_folders(inventory: Inventory, champions: Sequence[str]) -> dict[str, str]:
    """Run folders that stay whatever their age, with why: those a kept champion's tags name,
    and those of any version an alias points at."""
    by_version = {v.version: v for v in inventory.versions}
    holders = {v: a for a, v in inventory.aliases.items()}
    why: dict[tuple[str, ...], str] = {}
    for number in [*champions, *holders]:
        version = by_version.get(number)
        if version is None:
            continue
        role = "a kept champion" if number in champions else f"alias {holders[number]}"
        for ref in _references(version, inventory.root):
            why.setdefault(ref, f"referenced by v{number} ({role})")
    out = {}
    for folder in inventory.folders:
        parts = tuple(folder.key.split("/"))
        for ref, reason in why.items():
            if ref[: len(parts)] == parts or parts[: len(ref)] == ref:
                out[folder.key] = reason
                break
    return out


def plan(inventory: Inventory, policy: Policy) -> Plan:
    """Decide a housekeeping pass; reads nothing but its arguments.

    * A live run folder last written more than ``keep_weeks`` ago and not protected
      (:func:`protected_folders`) is deleted; a folder in ``trash/`` is deleted too (an earlier
      pass decided so and stopped midway), unless it is now protected: then it is restored.
    * A version older than ``challenger_weeks``, not archived, that never held ``champion``
      (:func:`ever_champion`) and that no alias points at, is archived.
    * The cache keeps the reviews of the snapshots of every run folder that stays.
    """
    champions = champions_to_keep(inventory, policy.keep_champions)
    protected = protected_folders(inventory, champions)
    folder_cutoff = inventory.now - timedelta(weeks=policy.keep_weeks)
    delete, purge, restore, kept = [], [], [], []
    for folder in sorted(inventory.folders, key=lambda f: f.key):
        if folder.trashed:
            (restore if folder.key in protected else purge).append(folder)
        elif folder.key not in protected and folder.modified < folder_cutoff:
            delete.append(folder)
        else:
            kept.append(folder)
    version_cutoff = inventory.now - timedelta(weeks=policy.challenger_weeks)
    spared = ever_champion(inventory) | set(inventory.aliases.values())
    archive = [
        v.version
        for v in sorted(inventory.versions, key=lambda v: int(v.version))
        if v.stage != ARCHIVED and v.version not in spared and v.created < version_cutoff
    ]
    return Plan(
        kept_champions=champions,
        protected=protected,
        delete=tuple(delete),
        purge=tuple(purge),
        restore=tuple(restore),
        archive=tuple(archive),
        snapshots=tuple(sorted(s for f in kept + restore for s in f.snapshots)),
        kept_folders=len(kept) + len(restore),
    )


@dataclass
class Report:
    """What a pass did (or, dry, would do); small enough for XCom."""

    dry_run: bool
    kept_champions: list[str]
    folders_deleted: int = 0
    folders_restored: int = 0
    bytes_freed: int = 0  # run folders
    cache_bytes_freed: int = 0
    cache_entries_dropped: int = 0
    versions_archived: list[str] = field(default_factory=list)
    plan: list[str] = field(default_factory=list)  # the plan's lines
    mlflow_run_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        """One line: what was freed (or, dry, that nothing changed)."""
        champions = ", ".join(f"v{v}" for v in self.kept_champions) or "none"
        if self.dry_run:
            return f"dry run: nothing changed (kept champions {champions}); the plan is above"
        archived = ", ".join(f"v{v}" for v in self.versions_archived) or "none"
        return (
            f"housekeeping freed {_mb(self.bytes_freed + self.cache_bytes_freed)}: "
            f"{self.folders_deleted} run folder(s) deleted ({_mb(self.bytes_freed)}), "
            f"{self.folders_restored} restored, the preprocess cache compacted by "
            f"{_mb(self.cache_bytes_freed)} ({self.cache_entries_dropped} entries); "
            f"archived {archived}; kept champions {champions}"
        )
