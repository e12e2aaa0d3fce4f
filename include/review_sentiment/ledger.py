"""The champion ledger: every move of the ``champion`` alias (a promotion, an approved or forced
promotion, a rollback), recorded once, append-only, in the registry itself.

Where it lives, and why there:

* **One registered-model tag per entry**, ``ledger.<seq>`` (``ledger.000001``, ...), holding the
  entry as compact JSON. A tag is one row that MLflow writes in one call: an entry is either
  there whole or not at all, and a new entry never rewrites an old one. One JSON-lines artifact
  would have to be downloaded, extended and uploaded again (MLflow artifacts cannot be appended
  to), so two writers or a crash midway could lose an entry. A table of our own would sit apart
  from the model; the tags show on the registered model's page of the MLflow UI, beside its
  versions, and travel with the registry's own backups.
* **Sequence numbers under the promotion lock** (``promotion.py``): every writer takes the lock,
  reads the ledger and appends ``max(seq) + 1``, so racing writers neither collide nor skip.
* **The entry is written before the alias moves**, in the same locked section: a crash after it
  leaves an entry whose move the retry completes (and finds: a retried move does not write a
  second entry, :func:`find_entry`); a crash before it moved nothing.
* **Tags on the versions** (``ledger.champion_since``, ``ledger.champion_until``,
  ``ledger.last_entry``) make the version page say when it held the alias; they are a view of
  the ledger, written after the move.

Pure parts (:class:`Entry`, :class:`Move`, :func:`new_entry`, :func:`parse_ledger`,
:func:`find_entry`, :func:`previous_champion`) need no MLflow; :func:`read_ledger`,
:func:`record_move` and :func:`move_champion` talk to the registry.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from review_sentiment.config import CHAMPION_ALIAS

log = logging.getLogger(__name__)

LEDGER_PREFIX = "ledger."
KIND_PROMOTED = "promoted"
KIND_FORCED = "forced"
KIND_ROLLBACK = "rollback"
KINDS = (KIND_PROMOTED, KIND_FORCED, KIND_ROLLBACK)
CLI_RUN = "cli"  # the run of a move made from the shell
TAG_SINCE = "ledger.champion_since"
TAG_UNTIL = "ledger.champion_until"
TAG_LAST_ENTRY = "ledger.last_entry"
_SEQ_DIGITS = 6  # zero-padded, so the MLflow UI lists the entries in order
_MAX_REASON = 1000  # MLflow caps tag values; a reason is a sentence, not a report


@dataclass(frozen=True)
class Entry:
    """One move of the champion alias."""

    seq: int
    at: str  # UTC, ISO 8601 to the second
    from_version: str | None  # None: there was no champion
    to_version: str
    run: str  # <dag_id>/<run_id>, or "cli"
    reason: str
    kind: str  # one of KINDS
    by: str | None = None  # who approved or forced it, where known

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown ledger kind {self.kind!r}; expected one of {list(KINDS)}")

    @property
    def key(self) -> str:
        """Its registered-model tag."""
        return f"{LEDGER_PREFIX}{self.seq:0{_SEQ_DIGITS}d}"

    def to_json(self) -> str:
        """The tag's value: compact JSON without the sequence number (the key holds it)."""
        data = {k: v for k, v in asdict(self).items() if k != "seq"}
        return json.dumps(data, separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_tag(cls, key: str, value: str) -> Entry:
        """The entry a ``ledger.<seq>`` tag holds."""
        data = json.loads(value)
        return cls(seq=int(key.removeprefix(LEDGER_PREFIX)), **data)

    def line(self) -> str:
        """One line for ``python -m review_sentiment history``."""
        source = f"v{self.from_version}" if self.from_version else "(none)"
        who = f" by {self.by}" if self.by else ""
        move = f"{source} -> v{self.to_version}"
        return f"#{self.seq} {self.at} {self.kind}: {move} ({self.run}{who}) {self.reason}"


def _is_entry_key(key: str) -> bool:
    return key.startswith(LEDGER_PREFIX) and key.removeprefix(LEDGER_PREFIX).isdigit()


def parse_ledger(tags: Mapping[str, str]) -> list[Entry]:
    """The entries among a registered model's tags, oldest first; other tags are ignored, and an
    unreadable entry is logged and skipped rather than hiding the rest."""
    entries = []
    for key, value in tags.items():
        if not _is_entry_key(key):
            continue
        try:
            entries.append(Entry.from_tag(key, value))
        except (ValueError, TypeError) as exc:
            log.warning("ledger tag %s is unreadable (%s); skipped", key, exc)
    return sorted(entries, key=lambda e: e.seq)


def find_entry(
    entries: Sequence[Entry], run: str, to_version: str, from_version: str | None = None
) -> Entry | None:
    """The entry an earlier try of this same move wrote, or None.

    A DAG run moves the alias to a version at most once, so its entry is found anywhere in the
    ledger. Shell moves all share the run ``cli``: only the newest entry, from the same champion
    (``from_version``), can be the unfinished try of this one (an older one is an earlier,
    separate move to the same version).
    """
    if run == CLI_RUN:
        last = entries[-1] if entries else None
        same = last is not None and (last.run, last.to_version) == (run, str(to_version))
        return last if same and last.from_version == from_version else None
    return next((e for e in reversed(entries) if e.run == run and e.to_version == str(to_version)), None)


def previous_champion(entries: Sequence[Entry], current: str | None) -> str | None:
    """The version that was champion before ``current`` took the alias (the newest move to it), or
    None if the ledger does not say."""
    if current is None:
        return None
    move = next((e for e in reversed(entries) if e.to_version == str(current)), None)
    return move.from_version if move is not None else None


@dataclass(frozen=True)
class Move:
    """A move of the alias about to be made: what its entry will say, bar the number and time."""

    from_version: str | None  # the champion now (None: none)
    to_version: str
    run: str | None  # <dag_id>/<run_id>; None: the shell
    reason: str
    kind: str  # one of KINDS
    by: str | None = None


def new_entry(entries: Sequence[Entry], move: Move, now: datetime | None = None) -> Entry:
    """The entry of ``move`` after ``entries`` (sequence ``max + 1``), stamped ``now`` in UTC."""
    at = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0).isoformat()
    return Entry(
        seq=max((e.seq for e in entries), default=0) + 1,
        at=at,
        from_version=None if move.from_version is None else str(move.from_version),
        to_version=str(move.to_version),
        run=move.run or CLI_RUN,
        reason=" ".join(move.reason.split())[:_MAX_REASON],
        kind=move.kind,
        by=move.by or None,
    )


def read_ledger(mlflow_client: Any, model_name: str) -> list[Entry]:
    """The champion ledger of ``model_name``, oldest first (empty for a model not registered)."""
    from mlflow.exceptions import MlflowException

    try:
        model = mlflow_client.get_registered_model(model_name)
    except MlflowException:
        return []
    return parse_ledger(model.tags or {})


def record_move(mlflow_client: Any, model_name: str, move: Move) -> tuple[Entry, bool]:
    """Append the entry of ``move``, unless an earlier try of the same move wrote it. The caller
    holds the promotion lock and moves the alias after this returns.

    Returns:
        The entry, and whether this call wrote it (False: found, written by an earlier try).
    """
    entries = read_ledger(mlflow_client, model_name)
    found = find_entry(entries, move.run or CLI_RUN, move.to_version, move.from_version)
    if found is not None:
        log.info("ledger: entry #%d of this move is already there; not written again", found.seq)
        return found, False
    entry = new_entry(entries, move)
    mlflow_client.set_registered_model_tag(model_name, entry.key, entry.to_json())
    log.info("ledger: %s", entry.line())
    return entry, True


def move_champion(mlflow_client: Any, model_name: str, move: Move) -> tuple[Entry, bool]:
    """Record ``move`` in the ledger, move ``champion`` to its version, then tag both versions
    with when they held it. Call under the promotion lock; idempotent (a retry writes no second
    entry and moves the alias to where it already is).

    Returns:
        The ledger entry, and whether this call wrote it.
    """
    entry, written = record_move(mlflow_client, model_name, move)
    mlflow_client.set_registered_model_alias(model_name, CHAMPION_ALIAS, entry.to_version)
    _tag_versions(mlflow_client, model_name, entry)
    return entry, written


def _tag_versions(mlflow_client: Any, model_name: str, entry: Entry) -> None:
    """The version page's view of the ledger: since when the new champion holds the alias, until
    when the old one held it."""
    from mlflow.exceptions import MlflowException

    mlflow_client.set_model_version_tag(model_name, entry.to_version, TAG_SINCE, entry.at)
    mlflow_client.set_model_version_tag(model_name, entry.to_version, TAG_LAST_ENTRY, entry.key)
    with contextlib.suppress(MlflowException):  # it never held the alias before: no such tag
        mlflow_client.delete_model_version_tag(model_name, entry.to_version, TAG_UNTIL)
    if entry.from_version and entry.from_version != entry.to_version:
        try:
            mlflow_client.set_model_version_tag(model_name, entry.from_version, TAG_UNTIL, entry.at)
        except MlflowException as exc:  # the old champion was deleted meanwhile: the ledger says it
            log.warning("ledger: could not tag v%s (%s)", entry.from_version, exc)


def history(mlflow_client: Any, model_name: str) -> str:
    """The ledger as text, newest last, one line per move, and where the alias is now."""
    entries = read_ledger(mlflow_client, model_name)
    from review_sentiment.versions import champion_version

    current = champion_version(mlflow_client, model_name)
    now = f"{CHAMPION_ALIAS} now: v{current.version}" if current is not None else f"no {CHAMPION_ALIAS}"
    lines = [e.line() for e in entries] or [f"{model_name}: no move of {CHAMPION_ALIAS} recorded yet"]
    return "\n".join([*lines, now])
