"""Where reviews come from: a CSV/Parquet file or a PostgreSQL table, read by one set of rules.

``ingest`` (whole) and ``batch_score`` (in chunks) both read through here: a file one refuses
(a header not delimited by commas, a row with more fields than the header, text that is not
UTF-8, a truncated ``.gz``) the other refuses with the same words. Frames come out with canonical
column names; a CSV's cells stay text (the contract check owns type conversion). A window
``[start, end)`` on ``ingested_at`` needs a table: a file has no arrival times.

A source is a file path or ``postgresql://...?table=<[schema.]table>``; run parameters name a
table as ``postgres:<table>`` and :func:`postgres_url` (the one builder) makes the URL from a
connection, so no password travels through params, XCom or logs.
"""

from __future__ import annotations

import gzip
import re
import warnings
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

from review_sentiment import schema
from review_sentiment.artifacts import safe_path
from review_sentiment.errors import ConfigError, DataContractError, UnsafePathError

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_TABLE = "reviews"
TABLE_PREFIX = "postgres:"
# The URL schemes that name a PostgreSQL database (SQLAlchemy's driver form included).
POSTGRES_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg2")
# A review may come without a title (read as empty); the other columns asked for must be there.
OPTIONAL_COLUMNS = (schema.TITLE,)
_OTHER_DELIMITERS = (";", "\t", "|")
# [schema.]table, plain identifiers only: the name also travels inside a URL query (?table=).
_TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?$")
# Cells as text (the contract check owns type conversion); an extra field is an error, not an index.
_CSV_OPTIONS: dict[str, Any] = dict(
    dtype=str, keep_default_na=False, encoding="utf-8-sig", index_col=False, on_bad_lines="error"
)


# --- Source strings ----------------------------------------------------------------------------


def postgres_url(uri: str, table: str) -> str:
    """The source of ``table`` (checked) in the database at ``uri`` (``postgres://`` as Airflow
    writes it, or ``postgresql://``): ``postgresql://...?table=<table>``."""
    uri = uri.replace("postgres://", "postgresql://", 1)
    return f"{uri}{'&' if '?' in uri else '?'}table={table}"


def is_postgres_source(source: str | Path) -> bool:
    """True when ``source`` is a PostgreSQL URL rather than a file path."""
    return urlsplit(str(source)).scheme in POSTGRES_SCHEMES


def libpq_url(url: str) -> str:
    """``url`` as libpq takes it: SQLAlchemy's ``postgresql+psycopg2://`` as ``postgresql://``."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(scheme="postgresql")) if parts.scheme == "postgresql+psycopg2" else url


def split_postgres_source(source: str) -> tuple[str, str]:
    """Split ``postgresql://…/db?table=name`` into a libpq URL and a table name (default
    ``reviews``)."""
    parts = urlsplit(libpq_url(source))
    query = parse_qs(parts.query)
    table = query.pop("table", [DEFAULT_TABLE])[-1]
    dsn = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query, doseq=True), ""))
    return dsn, table


def redact(url: str) -> str:
    """``url`` with its password, if any, shown as ``***``."""
    parts = urlsplit(url)
    if parts.password:
        return urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@")))
    return url


def resolve_source(
    source: str, data_roots: Sequence[Path], connection_uri: Callable[[str], str], conn_id: str
) -> str:
    """A user-given source (a DAG param) as the readers take it, checked first.

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
    return postgres_url(connection_uri(conn_id), name)


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
            f"source {redact(source)!r} is a URL: use {TABLE_PREFIX}<table> and an Airflow connection"
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


# --- Reading -----------------------------------------------------------------------------------


def read_reviews(
    source: str | Path,
    start: datetime | None = None,
    end: datetime | None = None,
    columns: Sequence[str] | None = None,
) -> pd.DataFrame:
    """All reviews of a source (a table: within ``[start, end)`` on ``ingested_at``).

    Args:
        source: A CSV/Parquet path or a ``postgresql://...?table=`` URL.
        start: Inclusive lower bound on ``ingested_at`` (a table only).
        end: Exclusive upper bound on ``ingested_at`` (a table only).
        columns: Canonical columns to return (default: every column of the contract, as found).

    Raises:
        DataContractError: as :func:`read_file` and :func:`read_table` raise it; a window on a file.
    """
    if is_postgres_source(source):
        return read_table(str(source), start, end, columns)
    _no_window_on_a_file(source, start, end)
    return read_file(source, columns)


def iter_reviews(
    source: str | Path,
    chunk_rows: int,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    columns: Sequence[str] | None = None,
) -> Iterator[pd.DataFrame]:
    """The reviews of a source ``chunk_rows`` at a time, by the rules of :func:`read_reviews`.

    Only one chunk is held at a time: a table through a server-side cursor, a Parquet file by
    row-group batches, a CSV by pandas chunks. A table with no rows in the window yields nothing.

    Raises:
        ConfigError: ``chunk_rows`` is not positive.
        DataContractError: as :func:`read_reviews`, raised by the chunk where it is found.
    """
    if chunk_rows < 1:
        raise ConfigError(f"chunk_rows must be at least 1, got {chunk_rows}")
    if is_postgres_source(source):
        yield from _table_chunks(str(source), start, end, columns, chunk_rows)
        return
    _no_window_on_a_file(source, start, end)
    yield from _file_chunks(Path(source), columns, chunk_rows)


def read_file(path: str | Path, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """Read a CSV (optionally gzip) or Parquet file in the original schema, a CSV's cells as text.

    Raises:
        DataContractError: the file is missing, empty, not UTF-8 or not parseable, or lacks a
            column asked for.
    """
    import pandas as pd

    path = _checked_file(path)
    with _parse_rules(path):
        if path.suffix == ".parquet":
            raw = pd.read_parquet(path, columns=_parquet_columns(path, columns))
        else:
            raw = pd.read_csv(path, **_CSV_OPTIONS)
    return _canonical(raw, str(path), columns)


def read_table(
    source: str,
    start: datetime | None = None,
    end: datetime | None = None,
    columns: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Read reviews from a PostgreSQL table, optionally only ``start <= ingested_at < end``.

    Args:
        source: ``postgresql://user@host:port/db?table=name`` (table defaults to ``reviews``).
        start: Inclusive lower bound on ``ingested_at``.
        end: Exclusive upper bound on ``ingested_at``.
        columns: Canonical columns to read (default: every column of the contract).

    Raises:
        DataContractError: the table does not exist, cannot be read, or has no rows (in the window).
    """
    chunks = list(_table_chunks(source, start, end, columns, None))  # one chunk, or none
    if not chunks:
        what = "the table is empty" if start is None and end is None else "no rows in the requested interval"
        raise DataContractError([what], f"table {split_postgres_source(source)[1]}")
    return chunks[0]


def _no_window_on_a_file(source: str | Path, start: datetime | None, end: datetime | None) -> None:
    if start is not None or end is not None:
        raise DataContractError(["an ingested_at interval needs a table source"], str(source))


def _checked_file(path: str | Path) -> Path:
    """``path``, refused before parsing when it is missing or its header is not comma-delimited."""
    path = Path(path)
    if not path.is_file():
        raise DataContractError([f"file not found: {path}"], str(path))
    if path.suffix != ".parquet" and (delimiter := _foreign_delimiter(path)):
        # Caught here: pandas would report a field-count error on some later line instead.
        raise DataContractError(
            [f"the header has no ',': the file looks delimited by {delimiter!r}"], str(path)
        )
    return path


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


@contextmanager
def _parse_rules(path: Path) -> Iterator[None]:
    """Parse inside this block: a parser's failure becomes a DataContractError naming it.

    Scoped to the parse itself (never held across a ``yield`` to the caller), because the
    warning filter it sets is process-wide while it lasts.
    """
    import pandas as pd

    with warnings.catch_warnings():
        # pandas only warns when a row has more fields than the header: make it an error.
        warnings.simplefilter("error", pd.errors.ParserWarning)
        try:
            yield
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


def _file_chunks(path: Path, columns: Sequence[str] | None, chunk_rows: int) -> Iterator[pd.DataFrame]:
    import pandas as pd

    path = _checked_file(path)
    with _parse_rules(path):
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            batches = pq.ParquetFile(path).iter_batches(
                batch_size=chunk_rows, columns=_parquet_columns(path, columns)
            )
            chunks: Iterator[pd.DataFrame] = (batch.to_pandas() for batch in batches)
        else:
            chunks = pd.read_csv(path, chunksize=chunk_rows, **_CSV_OPTIONS)
    try:
        while True:
            with _parse_rules(path):
                chunk = next(chunks, None)
            if chunk is None:
                return
            yield _canonical(chunk, str(path), columns)
    finally:
        chunks.close()  # the file handle, also when the caller stops early


def _parquet_columns(path: Path, columns: Sequence[str] | None) -> list[str] | None:
    """The file's own names of ``columns`` (original or canonical), to read no others."""
    if columns is None:
        return None
    import pyarrow.parquet as pq

    wanted = {schema.CANONICAL_TO_ORIGINAL.get(c, c) for c in columns} | set(columns)
    return [c for c in pq.read_schema(path).names if c in wanted]


def _canonical(frame: pd.DataFrame, where: str, columns: Sequence[str] | None) -> pd.DataFrame:
    """``frame`` with canonical names; with ``columns``, exactly those (a missing title empty)."""
    frame = frame.rename(columns=schema.ORIGINAL_TO_CANONICAL)
    if columns is None:
        return frame
    missing = [c for c in columns if c not in frame.columns and c not in OPTIONAL_COLUMNS]
    if missing:
        raise DataContractError([f"missing columns {missing}"], where)
    for column in columns:
        if column not in frame.columns:
            frame[column] = ""
    return frame.loc[:, list(columns)]


def _table_chunks(
    source: str,
    start: datetime | None,
    end: datetime | None,
    columns: Sequence[str] | None,
    chunk_rows: int | None,
) -> Iterator[pd.DataFrame]:
    """The window's rows ``chunk_rows`` at a time (None: all at once), ordered by review id."""
    import pandas as pd
    import psycopg2

    dsn, table = split_postgres_source(source)
    names = list(columns or schema.COLUMNS)
    query, params = _select(table, names, start, end)
    conn = psycopg2.connect(dsn)
    try:
        # A server-side cursor: the database holds the result, this process one chunk of it.
        with conn.cursor(name="read_reviews") as cur:
            cur.itersize = chunk_rows or cur.itersize
            cur.execute(query, params)
            while rows := (cur.fetchmany(chunk_rows) if chunk_rows else cur.fetchall()):
                yield pd.DataFrame(rows, columns=names)
    except (psycopg2.errors.UndefinedTable, psycopg2.errors.InsufficientPrivilege) as exc:
        reason = exc.pgerror.strip().splitlines()[0] if exc.pgerror else str(exc).strip()
        # libpq's "ERROR:  " severity prefix says nothing the exception does not.
        raise DataContractError([re.sub(r"^ERROR:\s+", "", reason)], f"table {table}") from None
    finally:
        conn.close()


def _select(
    table: str, columns: Sequence[str], start: datetime | None, end: datetime | None
) -> tuple[Any, list[datetime]]:
    """``SELECT columns FROM table [WHERE window] ORDER BY review_id`` and its parameters."""
    from psycopg2 import sql

    conditions, params = [], []
    if start is not None:
        conditions.append(sql.SQL("ingested_at >= %s"))
        params.append(start)
    if end is not None:
        conditions.append(sql.SQL("ingested_at < %s"))
        params.append(end)
    query = sql.SQL("SELECT {cols} FROM {table}{where} ORDER BY {id}").format(
        cols=sql.SQL(", ").join(sql.Identifier(c) for c in columns),
        table=sql.Identifier(*table.split(".")),
        where=sql.SQL(" WHERE ") + sql.SQL(" AND ").join(conditions) if conditions else sql.SQL(""),
        id=sql.Identifier(schema.ID),
    )
    return query, params
