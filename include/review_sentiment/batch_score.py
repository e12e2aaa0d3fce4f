"""Batch scoring: the champion's predictions for the reviews of a window, written by upsert.

The ``sentiment_score`` DAG runs this daily and whenever ``sentiment_retrain`` moves the
champion. The champion alias is resolved to one version first (:func:`resolve_champion`); that
version (``models:/<name>/<version>``, never ``@champion``) scores the whole run, so a promotion
in the middle of a run cannot mix two models, and every prediction records its version.

Reviews stream through in chunks, read by the same rules as ingest's
(:func:`review_sentiment.sources.iter_reviews`: a table through a server-side cursor, a Parquet
file by row-group batches, a CSV in pandas chunks); the model is loaded once, and each chunk is
written on its own (:mod:`review_sentiment.predictions`): to PostgreSQL as one transaction of
upserts, so a rerun replaces rather than duplicates and a killed run leaves whole chunks only; or
to one Parquet file, written atomically at the end.
"""

from __future__ import annotations

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
from review_sentiment.errors import ConfigError, DataContractError, UnsafePathError
from review_sentiment.predictions import ParquetSink, PostgresSink, open_sink
from review_sentiment.sources import (
    TABLE_PREFIX,
    check_source,
    is_postgres_source,
    iter_reviews,
    postgres_url,
    redact,
)

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

# A scheduled run covers the day before it (the CronTriggerTimetable's interval).
SCHEDULED_INTERVAL = timedelta(days=1)
RUN_TYPE_ASSET = "asset_triggered"  # Airflow's DagRunType.ASSET_TRIGGERED
SCORED_COLUMNS = (schema.ID, schema.TITLE, schema.TEXT)  # what a chunk holds


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
    return postgres_url(connection_uri(conn_id), table)


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
        DataContractError: the source is missing or malformed, by ingest's rules
            (:mod:`review_sentiment.sources`); nothing is written to a Parquet target.
        ConfigError: ``chunk_rows`` is not positive.
    """
    started = time.perf_counter()
    scored_at = scored_at or datetime.now(UTC)
    model = model if model is not None else _load(champion, tracking_uri)
    table = is_postgres_source(source)
    scope = window.describe() if window and table else "the whole source" + ("" if table else " (a file)")
    result = ScoreResult(champion.model_name, champion.version, scope, "")
    empty = build_records([], [], champion, scored_at, dag_run_id)
    with open_sink(target, output_path, empty) as sink:
        for chunk in _chunks(source, window, chunk_rows):
            written = _score_chunk(chunk, model, champion, sink, result, scored_at, dag_run_id)
            if written and on_chunk is not None:
                on_chunk(result.chunks, result.rows)
    result.target = redact(target) if is_postgres_source(target) else str(output_path)
    result.seconds = round(time.perf_counter() - started, 2)
    log.info("score: %s", result.summary())
    return result


def _load(champion: Champion, tracking_uri: str | None) -> Any:
    """The pinned version's pyfunc, from ``tracking_uri``'s registry."""
    import mlflow
    import mlflow.pyfunc

    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
        mlflow.set_registry_uri(tracking_uri)
    return mlflow.pyfunc.load_model(champion.uri)


def _chunks(source: str, window: Window | None, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """The source's reviews to score, by the readers' rules: a table's window, a file whole."""
    if window is not None and not is_postgres_source(source):
        log.info(
            "a file has no arrival times: scoring the whole file, whatever the window %s", window.describe()
        )
        window = None
    start, end = (window.start, window.end) if window else (None, None)
    return iter_reviews(source, chunk_rows, start=start, end=end, columns=SCORED_COLUMNS)


def _score_chunk(
    chunk: pd.DataFrame,
    model: Any,
    champion: Champion,
    sink: ParquetSink | PostgresSink,
    result: ScoreResult,
    scored_at: datetime,
    dag_run_id: str,
) -> bool:
    """Score one chunk's reviews with text, write their records and count them in ``result``;
    False when the chunk had none."""
    frame, skipped = usable(chunk)
    result.skipped_no_text += skipped
    if frame.empty:
        return False
    probability = scoring.predict_probability(model, frame)
    sink.write(build_records(frame[schema.ID].to_numpy(), probability, champion, scored_at, dag_run_id))
    result.rows += len(frame)
    result.chunks += 1
    log.info("chunk %d: %d reviews scored and written (%d so far)", result.chunks, len(frame), result.rows)
    return True
