"""Ingest: read reviews from a file or a PostgreSQL table, validate, write a Parquet snapshot."""

from __future__ import annotations

import gzip
import json
import logging
import re
import warnings
import zlib
from collections.abc import Callable, Sequence
from dataclasses import asdict
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

from review_sentiment import schema
from review_sentiment.artifacts import atomic_file, safe_path, write_json
from review_sentiment.drift import label_stats
from review_sentiment.errors import DataContractError, UnsafePathError
from review_sentiment.layout import IngestFiles
from review_sentiment.validate import (
    DEFAULT_MIN_ROWS,
    quarantine_rows,
    quarantine_violation,
    validate_reviews,
)

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

DEFAULT_TABLE = "reviews"
TABLE_PREFIX = "postgres:"
_PG_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg2")
_OTHER_DELIMITERS = (";", "\t", "|")
# [schema.]table, plain identifiers only: the name also travels inside a URL query (?table=).
_TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?$")


def resolve_source(
    source: str, data_roots: Sequence[Path], connection_uri: Callable[[str], str], conn_id: str
) -> str:
    """A user-given source (a DAG param) as what :func:`ingest` reads, checked first.

    Args:
        source: A file path, or ``postgres:<table>``.
        data_roots: Folders files may come from.
        connection_uri: Called with ``conn_id`` only for a table source: the database's URI (an
            Airflow connection's, whose password never enters params, XCom or logs).
        conn_id: The connection of a table source.

    Returns:
        A resolved file path, or a ``postgresql://...?table=<table>`` URL.

    Raises:
        UnsafePathError: see :func:`check_source`.
    """
    kind, name = check_source(source, data_roots)
    if kind == "file":
        return name
    uri = connection_uri(conn_id).replace("postgres://", "postgresql://", 1)
    return f"{uri}{'&' if '?' in uri else '?'}table={name}"


def check_source(source: str, data_roots: Sequence[Path]) -> tuple[str, str]:
    """Validate a user-given source (a DAG param) before anything is opened or connected to.

    Args:
        source: ``postgres:<table>`` or ``postgres:<schema>.<table>``, or a file path. A relative
            path is taken inside the first data root.
        data_roots: Folders files may come from (symlinks resolved).

    Returns:
        ``("table", name)`` or ``("file", resolved path)``.

    Raises:
        UnsafePathError: a NUL byte, a path outside every data root, a bad table name, or a URL
            (connection details come from an Airflow connection, never from run parameters).
    """
    if "\x00" in source:
        raise UnsafePathError(f"source contains a NUL byte: {source!r}")
    if "://" in source:
        raise UnsafePathError(
            f"source {_redact(source)!r} is a URL: use {TABLE_PREFIX}<table> and an Airflow connection"
        )
    if source.startswith(TABLE_PREFIX):
        table = source.removeprefix(TABLE_PREFIX)
        if not _TABLE_NAME.match(table):
            raise UnsafePathError(f"source table {table!r} is not a plain [schema.]table identifier")
        return "table", table
    if not data_roots:
        raise UnsafePathError("no data roots are allowed (set SENTIMENT_DATA_ROOTS)")
    for root in data_roots:
        try:
            return "file", str(safe_path(source, root))
        except UnsafePathError:
            continue
    roots = ", ".join(str(Path(r).resolve()) for r in data_roots)
    raise UnsafePathError(
        f"source path {source!r} is outside the allowed data roots (SENTIMENT_DATA_ROOTS): {roots}"
    )


def is_postgres_source(source: str) -> bool:
    """True when ``source`` is a PostgreSQL URL rather than a file path."""
    return urlsplit(str(source)).scheme in _PG_SCHEMES


def split_postgres_source(source: str) -> tuple[str, str]:
    """Split ``postgresql://…/db?table=name`` into a libpq URL and a table name."""
    parts = urlsplit(source)
    query = parse_qs(parts.query)
    table = query.pop("table", [DEFAULT_TABLE])[-1]
    scheme = "postgresql" if parts.scheme == "postgresql+psycopg2" else parts.scheme
    dsn = urlunsplit((scheme, parts.netloc, parts.path, urlencode(query, doseq=True), ""))
    return dsn, table


def read_file(path: str | Path) -> pd.DataFrame:
    """Read a CSV (optionally gzip) or Parquet file in the original schema, cells as text.

    Raises:
        DataContractError: the file is missing, empty, not UTF-8 or not parseable.
    """
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise DataContractError([f"file not found: {path}"], str(path))
    if path.suffix != ".parquet" and (delimiter := _foreign_delimiter(path)):
        # Caught here: pandas would report a field-count error on some later line instead.
        raise DataContractError(
            [f"the header has no ',': the file looks delimited by {delimiter!r}"], str(path)
        )
    with warnings.catch_warnings():
        try:
            if path.suffix == ".parquet":
                raw = pd.read_parquet(path)
            else:
                # Everything as text: the contract check owns type conversion and its messages.
                # pandas only warns when a row has more fields than the header: make it an error.
                warnings.simplefilter("error", pd.errors.ParserWarning)
                raw = pd.read_csv(
                    path,
                    dtype=str,
                    keep_default_na=False,
                    encoding="utf-8-sig",
                    index_col=False,  # a row with an extra field is an error, not a shifted index
                    on_bad_lines="error",
                )
        except pd.errors.ParserWarning:
            raise DataContractError(["a row has more fields than the header"], str(path)) from None
        except pd.errors.EmptyDataError:
            raise DataContractError(["the file is empty"], str(path)) from None
        except UnicodeDecodeError as exc:
            raise DataContractError([f"not valid UTF-8 at byte {exc.start}"], str(path)) from None
        except (pd.errors.ParserError, ValueError, OSError, EOFError, zlib.error) as exc:
            # EOFError and zlib.error: a truncated or corrupt .gz (an interrupted copy), which no
            # retry can fix.
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DataContractError([f"cannot parse: {first_line}"], str(path)) from None
    return raw.rename(columns=schema.ORIGINAL_TO_CANONICAL)


def _foreign_delimiter(path: Path) -> str | None:
    """The delimiter the header line uses when it is not a comma, else None."""
    try:
        with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as fh:
            header = fh.readline(1 << 16).decode("utf-8", errors="replace")
    except (OSError, EOFError, zlib.error):
        return None  # unreadable: the parser reports it with its own message
    if "," in header:
        return None
    return next((d for d in _OTHER_DELIMITERS if d in header), None)


def read_table(source: str, start: datetime | None = None, end: datetime | None = None) -> pd.DataFrame:
    """Read reviews from a PostgreSQL table, optionally only ``start <= ingested_at < end``.

    Args:
        source: ``postgresql://user@host:port/db?table=name`` (table defaults to ``reviews``).
        start: Inclusive lower bound on ``ingested_at``.
        end: Exclusive upper bound on ``ingested_at``.

    Raises:
        DataContractError: the table does not exist or cannot be read.
    """
    import pandas as pd
    import psycopg2
    from psycopg2 import sql

    dsn, table = split_postgres_source(source)
    conditions, params = [], []
    if start is not None:
        conditions.append(sql.SQL("ingested_at >= %s"))
        params.append(start)
    if end is not None:
        conditions.append(sql.SQL("ingested_at < %s"))
        params.append(end)
    query = sql.SQL("SELECT {cols} FROM {table}{where} ORDER BY review_id").format(
        cols=sql.SQL(", ").join(sql.Identifier(c) for c in schema.COLUMNS),
        table=sql.Identifier(*table.split(".")),
        where=sql.SQL(" WHERE ") + sql.SQL(" AND ").join(conditions) if conditions else sql.SQL(""),
    )
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        try:
            cur.execute(query, params)
        except (psycopg2.errors.UndefinedTable, psycopg2.errors.InsufficientPrivilege) as exc:
            reason = exc.pgerror.strip().splitlines()[0] if exc.pgerror else str(exc).strip()
            # libpq's "ERROR:  " severity prefix says nothing the exception does not.
            raise DataContractError([re.sub(r"^ERROR:\s+", "", reason)], f"table {table}") from None
        rows = cur.fetchall()
    frame = pd.DataFrame(rows, columns=list(schema.COLUMNS))
    if frame.empty:
        what = "no rows in the requested interval" if conditions else "the table is empty"
        raise DataContractError([what], f"table {table}")
    return frame


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

    Beside the snapshot: ``ingest.json`` (counts), ``label_stats.json`` (for the drift check)
    and, when rows held a NUL byte, ``quarantine.jsonl`` (those rows, one JSON object a line).

    Returns:
        Path of the Parquet snapshot.

    Raises:
        DataContractError: the input breaks the contract, or more than 1% of the rows were
            quarantined; nothing is written.
    """
    source_name = str(source)
    provenance: dict[str, object] = {}
    if is_postgres_source(source_name):
        if as_of is not None:
            end = min(end, as_of) if end else as_of
            start = as_of - timedelta(weeks=weeks) if weeks else start
        raw = read_table(source_name, start, end)
        source_name = _redact(source_name)
        provenance["ingested_at"] = {"from": start and start.isoformat(), "before": end and end.isoformat()}
    else:
        if start is not None or end is not None:
            raise DataContractError(["an ingested_at interval needs a table source"], source_name)
        raw = read_file(source)
        provenance["content_sha256"] = _sha256(Path(source))
        if as_of is not None:
            log.info(
                "a file has no arrival times: the snapshot is the whole file (sha256 %s), whatever the "
                "run's data interval (ending %s); use a postgres:<table> source to train on what had "
                "arrived by then",
                provenance["content_sha256"],
                as_of.isoformat(),
            )
    if not 0.0 < sample_fraction <= 1.0:
        raise DataContractError([f"sample_fraction must be in (0, 1], got {sample_fraction}"])
    raw, quarantined = quarantine_rows(raw)
    too_many = quarantine_violation(len(quarantined), len(raw) + len(quarantined))
    try:
        reviews, report = validate_reviews(
            raw, source=source_name, min_rows=0 if sample_fraction < 1 else min_rows
        )
    except DataContractError as exc:
        # Every violation at once, the quarantine share first.
        raise DataContractError([*([too_many] if too_many else []), *exc.violations], source_name) from None
    if too_many:
        raise DataContractError([too_many], source_name)
    if sample_fraction < 1.0:
        reviews = (
            reviews.groupby(schema.LABEL, group_keys=False)
            .sample(frac=sample_fraction, random_state=seed)
            .sort_values(schema.ID)
            .reset_index(drop=True)
        )
        reviews, report = validate_reviews(reviews, source=f"{source_name} (sampled)", min_rows=min_rows)
    files = IngestFiles.in_folder(output_dir)
    _write_quarantine(files.quarantine, quarantined)
    write_json(files.label_stats, label_stats(reviews))
    write_json(
        files.report, {"source": source_name, **provenance, "quarantined": len(quarantined), **asdict(report)}
    )
    # The snapshot last: whoever sees it (the XCom) sees its side files complete.
    snapshot = files.snapshot
    with atomic_file(snapshot) as tmp:
        reviews.to_parquet(tmp, index=False)
    log.info(
        "ingested %d reviews from %s (%d without text dropped, %d quarantined)",
        report.rows_out,
        source_name,
        report.dropped_no_text,
        len(quarantined),
    )
    return snapshot


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


def load_table(path: str | Path, source: str, ingested_at: datetime | None = None) -> int:
    """Create the table if needed and upsert the file's reviews into it, keyed on review id.

    Re-running with the same file changes nothing; a changed row gets the new values and a new
    ``ingested_at``. Rows without text are loaded too: ingest drops and counts them.

    Args:
        path: A CSV/Parquet file in the original schema.
        source: ``postgresql://user@host:port/db?table=name``.
        ingested_at: Timestamp for new or changed rows (default: now).

    Returns:
        The number of rows inserted or changed.
    """
    import psycopg2
    from psycopg2 import sql
    from psycopg2.extras import execute_values

    reviews = loadable_reviews(path)
    dsn, table = split_postgres_source(source)
    ident = sql.Identifier(*table.split("."))
    others = [c for c in schema.COLUMNS if c != schema.ID]
    upsert = sql.SQL(
        "INSERT INTO {t} ({cols}, ingested_at) VALUES %s ON CONFLICT ({key}) DO UPDATE SET "
        "{sets}, ingested_at = EXCLUDED.ingested_at WHERE ({old}) IS DISTINCT FROM ({new}) RETURNING 1"
    ).format(
        t=ident,
        cols=sql.SQL(", ").join(sql.Identifier(c) for c in schema.COLUMNS),
        key=sql.Identifier(schema.ID),
        sets=sql.SQL(", ").join(sql.SQL("{c} = EXCLUDED.{c}").format(c=sql.Identifier(c)) for c in others),
        old=sql.SQL(", ").join(sql.SQL("{t}.{c}").format(t=ident, c=sql.Identifier(c)) for c in others),
        new=sql.SQL(", ").join(sql.SQL("EXCLUDED.{c}").format(c=sql.Identifier(c)) for c in others),
    )
    stamp = ingested_at or datetime.now().astimezone()
    records = table_records(reviews, lambda _review_id: stamp)
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(table_ddl(ident))
        changed = execute_values(cur, upsert, records, page_size=1000, fetch=True)
    return len(changed)


def loadable_reviews(path: str | Path) -> pd.DataFrame:
    """The rows of ``path`` a reviews table takes: the contract checked, NUL rows left out (at
    most 1%: PostgreSQL text cannot hold a NUL byte), rows without text kept (ingest drops and
    counts them).

    Raises:
        DataContractError: the file breaks the data contract.
    """
    raw, quarantined = quarantine_rows(read_file(path))
    too_many = quarantine_violation(len(quarantined), len(raw) + len(quarantined))
    if too_many:
        raise DataContractError([too_many], str(path))
    if len(quarantined):
        log.warning(
            "not loading %d rows with a NUL byte (data rows %s)",
            len(quarantined),
            quarantined["_row"].tolist()[:10],
        )
    reviews, _ = validate_reviews(raw, source=str(path), min_rows=0, keep_empty_text=True)
    return reviews


def table_ddl(ident: Any) -> Any:
    """``CREATE TABLE IF NOT EXISTS`` for a reviews table: the original columns keyed on review
    id, plus ``ingested_at`` (the one definition, for ``load_table`` and ``reviews_db``)."""
    from psycopg2 import sql

    int_cols = set(schema.INTEGER_COLUMNS)
    columns = sql.SQL(", ").join(
        sql.SQL("{} {}").format(
            sql.Identifier(c),
            sql.SQL("bigint PRIMARY KEY" if c == schema.ID else ("integer" if c in int_cols else "text")),
        )
        for c in schema.COLUMNS
    )
    return sql.SQL(
        "CREATE TABLE IF NOT EXISTS {t} ({cols}, ingested_at timestamptz NOT NULL DEFAULT now())"
    ).format(t=ident, cols=columns)


def table_records(reviews: pd.DataFrame, arrival: Callable[[int], datetime]) -> list[tuple]:
    """One row tuple per review, in ``table_ddl``'s column order, with ``arrival(review_id)``
    as its ``ingested_at``."""
    int_cols = set(schema.INTEGER_COLUMNS)
    id_index = schema.COLUMNS.index(schema.ID)

    def cell(column: str, value: object) -> object:
        if _is_na(value):
            return None
        return int(value) if column in int_cols else value

    records = []
    for row in reviews.loc[:, list(schema.COLUMNS)].itertuples(index=False, name=None):
        cells = tuple(cell(c, v) for c, v in zip(schema.COLUMNS, row, strict=True))
        records.append((*cells, arrival(cells[id_index])))
    return records


def _is_na(value: object) -> bool:
    import pandas as pd

    return value is None or (not isinstance(value, str) and bool(pd.isna(value)))


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url
