"""Where a scoring run's predictions go: a PostgreSQL table, upserted chunk by chunk, or one
Parquet file written atomically (:func:`open_sink`).

A table takes each chunk as one transaction: COPY into a temporary table, then ``INSERT ... ON
CONFLICT (review_id, model_version) DO UPDATE``, so a rerun replaces rather than duplicates and a
killed run leaves whole chunks only. The file is written under a temporary name
(:func:`review_sentiment.artifacts.atomic_file`) and renamed into place when the run succeeds.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from review_sentiment.artifacts import atomic_file
from review_sentiment.sources import is_postgres_source, split_postgres_source

if TYPE_CHECKING:
    import pandas as pd

PREDICTION_COLUMNS = (
    "review_id", "model_name", "model_version", "probability", "label", "threshold", "scored_at",
    "dag_run_id",
)  # fmt: skip


class ParquetSink:
    """Predictions appended to one Parquet file (:func:`open_sink` gives it a temporary name and
    renames it into place only when the run succeeds)."""

    def __init__(self, path: Path, empty: pd.DataFrame) -> None:
        self.path = Path(path)
        self._empty = empty
        self._writer: Any = None

    def write(self, records: pd.DataFrame) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(records, preserve_index=False)
        if self._writer is None:
            self._writer = pq.ParquetWriter(self.path, table.schema)
        self._writer.write_table(table)

    def close(self) -> None:
        if self._writer is None:  # nothing scored: an empty file with the columns, not a stale one
            self.write(self._empty)
        self._writer.close()


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

    def close(self) -> None:
        self._conn.close()

    def abort(self) -> None:
        self._conn.rollback()
        self._conn.close()


@contextmanager
def open_sink(target: str, output_path: Path, empty: pd.DataFrame) -> Iterator[ParquetSink | PostgresSink]:
    """Where the predictions go, for the ``with`` body: a table (each chunk committed as it is
    written; a failure rolls back the chunk in flight) or the Parquet file ``output_path`` (written
    atomically: a failed run leaves an earlier run's file as it was, and no temporary file).

    Args:
        target: ``parquet``, or a ``postgresql://...?table=`` URL of the predictions table.
        output_path: The Parquet file (a ``parquet`` target).
        empty: No records, with their columns and types: the file a run that scores nothing writes.
    """
    if is_postgres_source(target):
        table = PostgresSink(*split_postgres_source(target))
        try:
            yield table
        except BaseException:
            table.abort()
            raise
        table.close()
        return
    with atomic_file(output_path) as tmp:
        parquet = ParquetSink(tmp, empty)
        try:
            yield parquet
        finally:
            parquet.close()  # the footer; on a failure atomic_file then removes the file


def read_probabilities(target: str, output_path: Path, dag_run_id: str, model_version: str) -> Any:
    """The probabilities a scoring run wrote (its ``dag_run_id``, with ``model_version``), as a
    float array: read back from the table, or from the run's Parquet file ``output_path``."""
    import numpy as np

    if is_postgres_source(target):
        import psycopg2
        from psycopg2 import sql

        dsn, table = split_postgres_source(target)
        query = sql.SQL("SELECT probability FROM {t} WHERE dag_run_id = %s AND model_version = %s").format(
            t=sql.Identifier(*table.split("."))
        )
        conn = psycopg2.connect(dsn)
        try:
            with conn, conn.cursor() as cur:
                cur.execute(query, (dag_run_id, int(model_version)))
                return np.fromiter((row[0] for row in cur), dtype=np.float64)
        finally:
            conn.close()
    import pyarrow.parquet as pq

    column = pq.read_table(output_path, columns=["probability"]).column("probability")
    return column.to_numpy().astype(np.float64)


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
