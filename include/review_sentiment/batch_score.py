"""Batch scoring: the champion's predictions for the reviews of a window, written by upsert.

The ``sentiment_score`` DAG runs this daily and whenever ``sentiment_retrain`` moves the
champion. The champion alias is resolved to one version first (:func:`resolve_champion`); that
version (``models:/<name>/<version>``, never ``@champion``) scores the whole run, so a promotion
in the middle of a run cannot mix two models, and every prediction records its version.

Reviews stream through in chunks (a table through a server-side cursor, a Parquet file by row
group batches, a CSV in pandas chunks), the model is loaded once, and each chunk is written on its
own: to PostgreSQL as one transaction (COPY into a temporary table, then ``INSERT ... ON CONFLICT
(review_id, model_version) DO UPDATE``), so a rerun replaces rather than duplicates and a killed
run leaves whole chunks only; or to one Parquet file, written under a temporary name and renamed
into place at the end.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from review_sentiment import schema, scoring, versions
from review_sentiment.config import (
    CHAMPION_ALIAS,
    DEFAULT_RESCORE_DAYS,
    DEFAULT_SCORE_CHUNK_ROWS,
    PREDICTIONS_PARQUET,
    Settings,
)
from review_sentiment.errors import ConfigError, DataContractError

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

# A scheduled run covers the day before it (the CronTriggerTimetable's interval).
SCHEDULED_INTERVAL = timedelta(days=1)
RUN_TYPE_ASSET = "asset_triggered"  # Airflow's DagRunType.ASSET_TRIGGERED
PREDICTION_COLUMNS = (
    "review_id", "model_name", "model_version", "probability", "label", "threshold", "scored_at",
    "dag_run_id",
)  # fmt: skip
_READ_COLUMNS = (schema.ID, schema.TITLE, schema.TEXT)


# --- The window --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """The reviews to score: ``start <= ingested_at < end`` (a table; a file is read whole)."""

    start: datetime
    end: datetime
    why: str

    def describe(self) -> str:
        return f"[{self.start.isoformat()}, {self.end.isoformat()}) ({self.why})"


def scoring_window(
    *,
    run_type: str,
    run_after: datetime,
    interval_start: datetime | None,
    interval_end: datetime | None,
    rescore_days: int = DEFAULT_RESCORE_DAYS,
) -> Window:
    """The window a DAG run scores.

    Airflow 3.3 gives an asset-triggered run of an ``AssetOrTimeSchedule`` DAG no logical date and
    no data interval (both None; ``run_after`` is when the asset event was queued), so such a run
    re-scores the ``rescore_days`` days ending at ``run_after``. A scheduled run scores its data
    interval (the day before it). A manual run scores its data interval when it has a non-empty
    one, else the day before ``run_after``.

    Raises:
        ConfigError: ``rescore_days`` is not positive.
    """
    if rescore_days < 1:
        raise ConfigError(f"rescore_days must be at least 1, got {rescore_days}")
    if run_type == RUN_TYPE_ASSET:
        start = run_after - timedelta(days=rescore_days)
        return Window(start, run_after, f"the champion changed: re-scoring the last {rescore_days} days")
    if interval_start is not None and interval_end is not None and interval_start < interval_end:
        return Window(interval_start, interval_end, f"the {run_type} run's data interval")
    return Window(run_after - SCHEDULED_INTERVAL, run_after, f"the day before the {run_type} run")


# --- The champion ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Champion:
    """The version a run scores with, resolved once; small enough for XCom."""

    model_name: str
    version: str
    threshold: float

    @property
    def uri(self) -> str:
        """The pinned model URI (the version, not the alias, which may move during the run)."""
        return f"models:/{self.model_name}/{self.version}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Champion:
        return cls(str(data["model_name"]), str(data["version"]), float(data["threshold"]))


@dataclass(frozen=True)
class NoChampion:
    """There is no champion to score with: not a failure, the run has nothing to do."""

    model_name: str
    reason: str


def resolve_champion(settings: Settings, expected_version: str | None = None) -> Champion | NoChampion:
    """The version ``champion`` points at now, with its decision threshold.

    Args:
        settings: Tracking URI and model name.
        expected_version: The version an asset event announced; only logged when the alias has
            moved on since (a later promotion, whose own event triggers its own run).
    """
    from review_sentiment.tracking import client

    version = versions.champion_version(client(settings.tracking_uri), settings.model_name)
    if version is None:
        return NoChampion(
            settings.model_name, f"{settings.model_name} has no {CHAMPION_ALIAS} yet: nothing to score"
        )
    found = Champion(settings.model_name, str(version.version), versions.version_threshold(version))
    if expected_version is not None and str(expected_version) != found.version:
        log.info("the event announced v%s; the champion is now v%s: scoring with v%s",
                 expected_version, found.version, found.version)  # fmt: skip
    return found


# --- Reading -----------------------------------------------------------------------------------


def iter_reviews(
    source: str, window: Window | None, chunk_rows: int = DEFAULT_SCORE_CHUNK_ROWS
) -> Iterator[pd.DataFrame]:
    """The reviews to score, ``chunk_rows`` at a time, as ``review_id``, ``title``, ``review_text``.

    Args:
        source: A resolved source: a CSV/Parquet path, or ``postgresql://...?table=``.
        window: For a table, only ``window.start <= ingested_at < window.end``; a file has no
            arrival times and is read whole.
        chunk_rows: Rows per chunk (the memory bound).

    Raises:
        DataContractError: the file or table is missing or lacks the columns.
    """
    from review_sentiment.ingest import is_postgres_source

    if chunk_rows < 1:
        raise ConfigError(f"chunk_rows must be at least 1, got {chunk_rows}")
    if is_postgres_source(source):
        yield from _iter_table(source, window, chunk_rows)
        return
    if window is not None:
        log.info(
            "a file has no arrival times: scoring the whole file, whatever the window %s", window.describe()
        )
    yield from _iter_file(Path(source), chunk_rows)


def _canonical(frame: pd.DataFrame, where: str) -> pd.DataFrame:
    frame = frame.rename(columns=schema.ORIGINAL_TO_CANONICAL)
    missing = [c for c in (schema.ID, schema.TEXT) if c not in frame.columns]
    if missing:
        raise DataContractError([f"missing columns {missing}"], where)
    if schema.TITLE not in frame.columns:
        frame[schema.TITLE] = ""
    return frame.loc[:, list(_READ_COLUMNS)]


def _iter_file(path: Path, chunk_rows: int) -> Iterator[pd.DataFrame]:
    import pandas as pd

    if not path.is_file():
        raise DataContractError([f"file not found: {path}"], str(path))
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        parquet = pq.ParquetFile(path)
        wanted = {schema.CANONICAL_TO_ORIGINAL[c] for c in _READ_COLUMNS} | set(_READ_COLUMNS)
        columns = [c for c in parquet.schema_arrow.names if c in wanted]
        for batch in parquet.iter_batches(batch_size=chunk_rows, columns=columns):
            yield _canonical(batch.to_pandas(), str(path))
        return
    chunks = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig", index_col=False,
                         chunksize=chunk_rows)  # fmt: skip
    for chunk in chunks:
        yield _canonical(chunk, str(path))


def _iter_table(source: str, window: Window | None, chunk_rows: int) -> Iterator[pd.DataFrame]:
    import re

    import pandas as pd
    import psycopg2
    from psycopg2 import sql

    from review_sentiment.ingest import split_postgres_source

    dsn, table = split_postgres_source(source)
    where, params = sql.SQL(""), []
    if window is not None:
        where, params = sql.SQL(" WHERE ingested_at >= %s AND ingested_at < %s"), [window.start, window.end]
    query = sql.SQL("SELECT {cols} FROM {table}{where} ORDER BY {id}").format(
        cols=sql.SQL(", ").join(sql.Identifier(c) for c in _READ_COLUMNS),
        table=sql.Identifier(*table.split(".")),
        where=where,
        id=sql.Identifier(schema.ID),
    )
    conn = psycopg2.connect(dsn)
    try:
        # A server-side cursor: the database holds the result, this process one chunk of it.
        with conn.cursor(name="score_reviews") as cur:
            cur.itersize = chunk_rows
            cur.execute(query, params)
            while rows := cur.fetchmany(chunk_rows):
                yield pd.DataFrame(rows, columns=list(_READ_COLUMNS))
    except (psycopg2.errors.UndefinedTable, psycopg2.errors.InsufficientPrivilege) as exc:
        reason = exc.pgerror.strip().splitlines()[0] if exc.pgerror else str(exc).strip()
        raise DataContractError([re.sub(r"^ERROR:\s+", "", reason)], f"table {table}") from None
    finally:
        conn.close()


# --- Records -----------------------------------------------------------------------------------


def usable(frame: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """The rows with a review text and an integer id, and how many others were left out (a
    review without text has nothing to score; ingest drops those too).

    Raises:
        DataContractError: a review id is not an integer.
    """
    import pandas as pd

    text = frame[schema.TEXT].fillna("").astype(str)
    keep = frame.loc[text.str.strip() != ""].copy()
    ids = pd.to_numeric(keep[schema.ID], errors="coerce")
    if ids.isna().any():
        bad = keep.loc[ids.isna(), schema.ID].head(3).tolist()
        raise DataContractError([f"review ids that are not integers, e.g. {bad}"], "reviews")
    keep[schema.ID] = ids.astype("int64")
    return keep, len(frame) - len(keep)


def build_records(
    review_ids: Any, probability: Any, champion: Champion, scored_at: datetime, dag_run_id: str
) -> pd.DataFrame:
    """One prediction row per review: the pinned version, its threshold and the label it gives
    (1 = recommended: the probability is at least the threshold)."""
    import numpy as np
    import pandas as pd

    probability = np.asarray(probability, dtype=np.float64).reshape(-1)
    ids = np.asarray(review_ids, dtype=np.int64).reshape(-1)
    if len(ids) != len(probability):
        raise ValueError(f"{len(ids)} review ids but {len(probability)} probabilities")
    count = len(ids)
    return pd.DataFrame(
        {
            "review_id": ids,
            "model_name": np.full(count, champion.model_name, dtype=object),
            "model_version": np.full(count, int(champion.version), dtype=np.int64),
            "probability": probability,
            "label": (probability >= champion.threshold).astype(np.int16),
            "threshold": np.full(count, champion.threshold, dtype=np.float64),
            "scored_at": pd.Series(pd.Timestamp(scored_at), index=range(count)).dt.as_unit("us"),
            "dag_run_id": np.full(count, dag_run_id, dtype=object),
        }
    )


# --- Writing -----------------------------------------------------------------------------------


def parse_target(target: str) -> str | None:
    """A predictions target (setting or param): None for the Parquet file, else the table name.

    Raises:
        ConfigError: neither ``parquet`` nor ``postgres:<table>`` with a plain table name.
    """
    from review_sentiment.errors import UnsafePathError
    from review_sentiment.ingest import TABLE_PREFIX, check_source

    if target == PREDICTIONS_PARQUET:
        return None
    if not target.startswith(TABLE_PREFIX):
        raise ConfigError(
            f"predictions target {target!r}: use {PREDICTIONS_PARQUET} or {TABLE_PREFIX}<table>"
        )
    try:
        return check_source(target, ())[1]
    except UnsafePathError as exc:
        raise ConfigError(str(exc)) from None


def resolve_target(target: str, connection_uri: Callable[[str], str], conn_id: str) -> str:
    """A predictions target (setting or param) as :func:`score_reviews` takes it: ``parquet``, or
    the table's ``postgresql://...?table=`` URL through the connection ``conn_id`` (looked up only
    for a table, so its password never enters params, XCom or logs).

    Raises:
        ConfigError: see :func:`parse_target`.
    """
    table = parse_target(target)
    if table is None:
        return PREDICTIONS_PARQUET
    uri = connection_uri(conn_id).replace("postgres://", "postgresql://", 1)
    return f"{uri}{'&' if '?' in uri else '?'}table={table}"


class ParquetSink:
    """One Parquet file, written under a temporary name and renamed into place by :meth:`close`;
    a failed run leaves no file (and an earlier run's file as it was)."""

    def __init__(self, path: Path) -> None:
        import os
        import tempfile

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        os.close(fd)
        self._tmp = Path(name)
        self._writer: Any = None

    def write(self, records: pd.DataFrame) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(records, preserve_index=False)
        if self._writer is None:
            self._writer = pq.ParquetWriter(self._tmp, table.schema)
        self._writer.write_table(table)

    def close(self) -> str:
        import os

        if self._writer is None:  # nothing scored: an empty file with the columns, not a stale one
            self.write(build_records([], [], Champion("", "0", 0.5), datetime.now(UTC), "")[:0])
        self._writer.close()
        os.replace(self._tmp, self.path)
        return str(self.path)

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._tmp.unlink(missing_ok=True)


class PostgresSink:
    """A predictions table, created if missing; each chunk is one transaction of upserts keyed on
    (review_id, model_version)."""

    def __init__(self, dsn: str, table: str) -> None:
        import psycopg2
        from psycopg2 import sql

        self.table = table
        self._ident = sql.Identifier(*table.split("."))
        self._conn = psycopg2.connect(dsn)
        with self._conn, self._conn.cursor() as cur:
            cur.execute(create_table_sql(table))
            # Per session; emptied at each commit, so a chunk never sees another's rows.
            stage = "CREATE TEMP TABLE IF NOT EXISTS score_chunk (LIKE {t}) ON COMMIT DELETE ROWS"
            cur.execute(sql.SQL(stage).format(t=self._ident))

    def write(self, records: pd.DataFrame) -> None:
        from psycopg2 import sql

        buffer = io.StringIO()
        records.loc[:, list(PREDICTION_COLUMNS)].to_csv(
            buffer, index=False, header=False, date_format="%Y-%m-%d %H:%M:%S.%f%z"
        )
        buffer.seek(0)
        cols = sql.SQL(", ").join(sql.Identifier(c) for c in PREDICTION_COLUMNS)
        with self._conn.cursor() as cur:
            cur.copy_expert(
                sql.SQL("COPY score_chunk ({cols}) FROM STDIN WITH (FORMAT csv)").format(cols=cols), buffer
            )
            cur.execute(upsert_sql(self.table))
        self._commit()

    def _commit(self) -> None:
        """The chunk's one commit (a separate method so that a test can kill the process here)."""
        self._conn.commit()

    def close(self) -> str:
        self._conn.close()
        return f"table {self.table}"

    def abort(self) -> None:
        self._conn.rollback()
        self._conn.close()


def create_table_sql(table: str) -> Any:
    """``CREATE TABLE IF NOT EXISTS`` for the predictions table."""
    from psycopg2 import sql

    return sql.SQL(
        "CREATE TABLE IF NOT EXISTS {t} (review_id bigint NOT NULL, model_name text NOT NULL, "
        "model_version integer NOT NULL, probability double precision NOT NULL, label smallint NOT NULL, "
        "threshold double precision NOT NULL, scored_at timestamptz NOT NULL, dag_run_id text NOT NULL, "
        "PRIMARY KEY (review_id, model_version))"
    ).format(t=sql.Identifier(*table.split(".")))


def upsert_sql(table: str) -> Any:
    """Move the staged chunk into the table: a (review_id, model_version) already there is replaced."""
    from psycopg2 import sql

    others = [c for c in PREDICTION_COLUMNS if c not in ("review_id", "model_version")]
    return sql.SQL(
        "INSERT INTO {t} ({cols}) SELECT {cols} FROM score_chunk "
        "ON CONFLICT (review_id, model_version) DO UPDATE SET {sets}"
    ).format(
        t=sql.Identifier(*table.split(".")),
        cols=sql.SQL(", ").join(sql.Identifier(c) for c in PREDICTION_COLUMNS),
        sets=sql.SQL(", ").join(sql.SQL("{c} = EXCLUDED.{c}").format(c=sql.Identifier(c)) for c in others),
    )


# --- The stage ---------------------------------------------------------------------------------


@dataclass
class ScoreResult:
    """What a scoring run did; small enough for XCom."""

    model_name: str
    version: str
    window: str
    target: str
    rows: int = 0
    chunks: int = 0
    skipped_no_text: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        return (
            f"scored {self.rows:,} reviews with {self.model_name} v{self.version} in {self.chunks} chunks "
            f"({self.skipped_no_text} without text left out) in {self.seconds:.1f} s -> {self.target}; "
            f"window {self.window}"
        )


def score_reviews(
    source: str,
    champion: Champion,
    *,
    window: Window | None,
    target: str,
    output_path: Path,
    dag_run_id: str,
    tracking_uri: str | None = None,
    chunk_rows: int = DEFAULT_SCORE_CHUNK_ROWS,
    scored_at: datetime | None = None,
    model: Any = None,
    on_chunk: Callable[[int, int], None] | None = None,
) -> ScoreResult:
    """Score the window's reviews with the pinned version and write the predictions.

    Args:
        source: A resolved source (a file path, or ``postgresql://...?table=``).
        champion: The version resolved at the start of the run.
        window: The reviews' ``ingested_at`` window (a table source).
        target: ``parquet``, or a ``postgresql://...?table=`` URL of the predictions table.
        output_path: The Parquet file (a ``parquet`` target).
        dag_run_id: Recorded with every prediction.
        tracking_uri: Where ``champion.uri`` is loaded from.
        chunk_rows: Rows read, scored and written at a time.
        scored_at: The run's scoring time (default: now).
        model: An already loaded pyfunc (tests, the benchmark); loaded from ``champion.uri`` if None.
        on_chunk: Called after each chunk is written with (chunk number, rows so far).

    Raises:
        DataContractError: the source is missing or malformed.
    """
    from review_sentiment.ingest import _redact, is_postgres_source, split_postgres_source

    started = time.perf_counter()
    scored_at = scored_at or datetime.now(UTC)
    if model is None:
        import mlflow
        import mlflow.pyfunc

        if tracking_uri:
            mlflow.set_tracking_uri(tracking_uri)
            mlflow.set_registry_uri(tracking_uri)
        model = mlflow.pyfunc.load_model(champion.uri)
    if is_postgres_source(target):
        sink: ParquetSink | PostgresSink = PostgresSink(*split_postgres_source(target))
    else:
        sink = ParquetSink(output_path)
    table = is_postgres_source(source)
    scope = window.describe() if window and table else "the whole source" + ("" if table else " (a file)")
    result = ScoreResult(champion.model_name, champion.version, scope, "")
    try:
        for chunk in iter_reviews(source, window, chunk_rows):
            frame, skipped = usable(chunk)
            result.skipped_no_text += skipped
            if frame.empty:
                continue
            probability = scoring.predict_probability(model, frame)
            sink.write(
                build_records(frame[schema.ID].to_numpy(), probability, champion, scored_at, dag_run_id)
            )
            result.rows += len(frame)
            result.chunks += 1
            log.info(
                "chunk %d: %d reviews scored and written (%d so far)", result.chunks, len(frame), result.rows
            )
            if on_chunk is not None:
                on_chunk(result.chunks, result.rows)
    except BaseException:
        sink.abort()
        raise
    where = sink.close()
    result.target = _redact(target) if is_postgres_source(target) else where
    result.seconds = round(time.perf_counter() - started, 2)
    log.info("score: %s", result.summary())
    return result
