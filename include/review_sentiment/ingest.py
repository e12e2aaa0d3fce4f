"""Ingest: read reviews from a file or a PostgreSQL table, validate, write a Parquet snapshot.

Reading (and its rules) is :mod:`review_sentiment.sources`; the reviews table and its writers are
:mod:`review_sentiment.reviews_db`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from review_sentiment import schema
from review_sentiment.artifacts import atomic_file, write_json
from review_sentiment.drift import label_stats
from review_sentiment.errors import DataContractError
from review_sentiment.layout import IngestFiles
from review_sentiment.sources import is_postgres_source, read_reviews, redact
from review_sentiment.validate import (
    DEFAULT_MIN_ROWS,
    ValidationReport,
    quarantine_rows,
    quarantine_violation,
    validate_reviews,
)

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)


def ingest(
    source: str | Path,
    output_dir: str | Path,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    as_of: datetime | None = None,
    weeks: int = 0,
    sample_fraction: float = 1.0,
    min_rows: int = DEFAULT_MIN_ROWS,
    seed: int = 42,
) -> Path:
    """Read, validate and snapshot the reviews; return the snapshot's path.

    Args:
        source: A CSV/Parquet path or a ``postgresql://`` URL with ``?table=``.
        output_dir: Folder for ``reviews.parquet`` and ``ingest.json``.
        start: Inclusive lower bound on ``ingested_at`` (table sources only).
        end: Exclusive upper bound on ``ingested_at`` (table sources only).
        as_of: The end of the run's data interval: a table gives the reviews that had arrived by
            then (``ingested_at < as_of``), so a rerun or backfill of a week reproduces its rows. A
            file has no arrival times: it is read whole, and its content hash is recorded.
        weeks: With ``as_of`` and a table: only the last ``weeks`` weeks before it (0: all).
        sample_fraction: Keep this share of each class, for quick runs.
        min_rows: Fewest usable rows (checked after sampling).
        seed: Seed for the sample.

    Returns:
        Path of the Parquet snapshot. Beside it: ``ingest.json`` (counts), ``label_stats.json``
        (label counts) and, when rows held a NUL byte, ``quarantine.jsonl`` (those rows).

    Raises:
        DataContractError: the input breaks the contract, or more than 1% of the rows were
            quarantined; nothing is written.
    """
    raw, source_name, provenance = _read(source, start, end, as_of, weeks)
    if not 0.0 < sample_fraction <= 1.0:
        raise DataContractError([f"sample_fraction must be in (0, 1], got {sample_fraction}"])
    raw, quarantined = quarantine_rows(raw)
    reviews, report = _validated(raw, len(quarantined), source_name, sample_fraction, min_rows)
    if sample_fraction < 1.0:
        reviews, report = _sample(reviews, sample_fraction, seed, f"{source_name} (sampled)", min_rows)
    files = IngestFiles.in_folder(output_dir)
    _write_quarantine(files.quarantine, quarantined)
    write_json(files.label_stats, label_stats(reviews))
    write_json(
        files.report, {"source": source_name, **provenance, "quarantined": len(quarantined), **asdict(report)}
    )
    # The snapshot last: whoever sees it (the XCom) sees its side files complete.
    with atomic_file(files.snapshot) as tmp:
        reviews.to_parquet(tmp, index=False)
    log.info(
        "ingested %d reviews from %s (%d without text dropped, %d quarantined)",
        report.rows_out,
        source_name,
        report.dropped_no_text,
        len(quarantined),
    )
    return files.snapshot


def _read(
    source: str | Path, start: datetime | None, end: datetime | None, as_of: datetime | None, weeks: int
) -> tuple[pd.DataFrame, str, dict[str, object]]:
    """The raw reviews, the source's name for reports (no password) and its provenance: a
    table's ``ingested_at`` window (narrowed by ``as_of`` and ``weeks``), a file's content hash."""
    source_name = str(source)
    if is_postgres_source(source_name):
        if as_of is not None:
            end = min(end, as_of) if end else as_of
            start = as_of - timedelta(weeks=weeks) if weeks else start
        window = {"from": start and start.isoformat(), "before": end and end.isoformat()}
        return read_reviews(source_name, start, end), redact(source_name), {"ingested_at": window}
    raw = read_reviews(source, start, end)
    provenance: dict[str, object] = {"content_sha256": _sha256(Path(source))}
    if as_of is not None:
        log.info(
            "a file has no arrival times: the snapshot is the whole file (sha256 %s), whatever the "
            "run's data interval (ending %s); use a postgres:<table> source to train on what had "
            "arrived by then",
            provenance["content_sha256"],
            as_of.isoformat(),
        )
    return raw, source_name, provenance


def _validated(
    raw: pd.DataFrame, quarantined: int, source_name: str, sample_fraction: float, min_rows: int
) -> tuple[pd.DataFrame, ValidationReport]:
    """The contract checked, every violation at once, the quarantine share first (a sample is
    held to ``min_rows`` after sampling, not before)."""
    too_many = quarantine_violation(quarantined, len(raw) + quarantined)
    try:
        reviews, report = validate_reviews(
            raw, source=source_name, min_rows=0 if sample_fraction < 1 else min_rows
        )
    except DataContractError as exc:
        raise DataContractError([*([too_many] if too_many else []), *exc.violations], source_name) from None
    if too_many:
        raise DataContractError([too_many], source_name)
    return reviews, report


def _sample(
    reviews: pd.DataFrame, fraction: float, seed: int, source_name: str, min_rows: int
) -> tuple[pd.DataFrame, ValidationReport]:
    """``fraction`` of each class (seeded), in id order, checked again (``min_rows`` included)."""
    sample = (
        reviews.groupby(schema.LABEL, group_keys=False)
        .sample(frac=fraction, random_state=seed)
        .sort_values(schema.ID)
        .reset_index(drop=True)
    )
    return validate_reviews(sample, source=source_name, min_rows=min_rows)


def _sha256(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _write_quarantine(path: Path, quarantined: pd.DataFrame) -> None:
    """One JSON object per quarantined row (JSON escapes the NUL bytes); no file when none."""
    if quarantined.empty:
        path.unlink(missing_ok=True)  # a stale file from an earlier attempt would mislead
        return
    log.warning("quarantined %d rows to %s", len(quarantined), path)
    with atomic_file(path) as tmp, open(tmp, "w", encoding="utf-8") as out:
        for record in quarantined.to_dict(orient="records"):
            row, reason = record.pop("_row"), record.pop("_reason")
            cells = {schema.CANONICAL_TO_ORIGINAL.get(k, k): v for k, v in record.items()}
            out.write(json.dumps({"row": row, "reason": reason, "cells": cells}, default=str) + "\n")
