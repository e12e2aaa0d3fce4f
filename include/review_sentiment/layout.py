"""The artifact root's layout: where every run-scoped output, cache, state file and lock lives,
and the names of the files one stage leaves for the next.

    <root>/<dag_id>/<run_id>/<task_id>[-<map_index>]/   one task instance's outputs
    <root>/sentiment_score/<run_id>/score/predictions.parquet   a scoring run's predictions
    <root>/cache/preprocess/                           cleaned texts, kept between runs
    <root>/locks/<model_name>.lock                     the promotion lock without PostgreSQL
    <root>/trash/<dag_id>/<run_id>/                    run folders housekeeping is deleting

A stage's output folder is described by one of the ``*Files`` classes below: the writer fills
it, the reader finds it from the one path that travelled through XCom.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Self

from review_sentiment.artifacts import safe_path

CACHE_DIR = "cache"
LOCKS_DIR = "locks"
TRASH_DIR = "trash"
# Model names become a file name under locks/: no separators, no "..".
_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")

# Files of each stage's output folder.
SNAPSHOT_NAME = "reviews.parquet"
REPORT_NAME = "ingest.json"
QUARANTINE_NAME = "quarantine.jsonl"
LABEL_STATS_NAME = "label_stats.json"  # the snapshot's label counts, for people
OUTPUT_NAME = "reviews_clean.parquet"
SETTINGS_NAME = "preprocess.json"
MANIFEST_NAME = "manifest.json"
VOCABULARY_NAME = "vocabulary.json"
NGRAMS_NAME = "ngrams.json"
PREDICTIONS_NAME = "predictions.parquet"  # sentiment_score's output without a predictions table


class _StageFiles:
    """The files of one stage's output folder, found from any one of them."""

    NAMES: ClassVar[tuple[str, ...]]  # the file names, in field order

    @classmethod
    def in_folder(cls, folder: str | Path) -> Self:
        return cls(*(Path(folder) / name for name in cls.NAMES))

    @classmethod
    def of(cls, path: str | Path) -> Self:
        """The files beside ``path`` (the one that travelled through XCom)."""
        return cls.in_folder(Path(path).parent)


@dataclass(frozen=True)
class IngestFiles(_StageFiles):
    """Ingest's folder: the snapshot and what describes it."""

    NAMES = (SNAPSHOT_NAME, REPORT_NAME, QUARANTINE_NAME, LABEL_STATS_NAME)
    snapshot: Path
    report: Path
    quarantine: Path
    label_stats: Path


@dataclass(frozen=True)
class PreprocessFiles(_StageFiles):
    """Preprocess's folder: the cleaned reviews and the settings that cleaned them."""

    NAMES = (OUTPUT_NAME, SETTINGS_NAME)
    cleaned: Path
    settings: Path


@dataclass(frozen=True)
class ArtifactLayout:
    """Paths under one artifact root."""

    root: Path

    def task_dir(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> Path:
        """The run-scoped output folder of one task instance (mapped instances apart)."""
        name = task_id if map_index < 0 else f"{task_id}-{map_index}"
        return self.resolve(Path(dag_id) / run_id / name)

    @property
    def preprocess_cache(self) -> Path:
        return self.root / CACHE_DIR / "preprocess"

    @property
    def trash(self) -> Path:
        """Where housekeeping renames a run folder before deleting it (housekeeping.py)."""
        return self.root / TRASH_DIR

    def lock_file(self, model_name: str) -> Path:
        return self.resolve(Path(LOCKS_DIR) / f"{_folder_name(model_name)}.lock")

    def resolve(self, path: str | Path) -> Path:
        """``path`` (absolute, or relative to the root), accepted only inside the root.

        Raises:
            UnsafePathError: the path escapes the root or holds a NUL byte.
        """
        return safe_path(path, self.root)


def _folder_name(model_name: str) -> str:
    if not _MODEL_NAME.match(model_name) or ".." in model_name:
        raise ValueError(f"model name {model_name!r} is not usable as a folder name")
    return model_name
