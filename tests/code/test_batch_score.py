"""The scoring stage's pure parts: the window of a run, targets, records, chunked reading, the
Parquet output (a stand-in model: the registered pyfunc is exercised in tests/integration)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from review_sentiment import schema
from review_sentiment.batch_score import (
    SCORED_COLUMNS,
    Champion,
    Window,
    build_records,
    parse_target,
    resolve_target,
    score_reviews,
    scoring_window,
    usable,
)
from review_sentiment.errors import ConfigError, DataContractError
from review_sentiment.ingest import ingest
from review_sentiment.predictions import PREDICTION_COLUMNS, open_sink
from review_sentiment.sources import iter_reviews

RUN_AFTER = datetime(2026, 11, 30, 5, 0, tzinfo=UTC)
CHAMPION = Champion("customer-sentiment-analysis", "7", 0.6)


class LengthModel:
    """A pyfunc stand-in: longer reviews are likelier recommended; counts its calls."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        self.calls.append(len(frame))
        lengths = frame[schema.MODEL_TEXT_COLUMN].str.len().to_numpy(dtype=float)
        return pd.DataFrame({"probability": lengths / (lengths + 10.0)})


def reviews(count: int, start_id: int = 0) -> pd.DataFrame:
    """Reviews in the original schema's column names (as the real file has them)."""
    return pd.DataFrame(
        {
            "Unnamed: 0": [str(start_id + i) for i in range(count)],
            "Title": ["t"] * count,
            "Review Text": ["good " * (i % 5) for i in range(count)],  # every fifth one empty
            "Rating": ["5"] * count,
        }
    )


# --- The window --------------------------------------------------------------------------------


def test_a_scheduled_run_scores_its_data_interval() -> None:
    window = scoring_window(
        run_type="scheduled", run_after=RUN_AFTER, interval_start=RUN_AFTER - timedelta(days=1),
        interval_end=RUN_AFTER, rescore_days=7,
    )  # fmt: skip
    assert (window.start, window.end) == (RUN_AFTER - timedelta(days=1), RUN_AFTER)


@pytest.mark.parametrize("days", [1, 7, 30])
def test_an_asset_triggered_run_rescores_the_last_days_ending_at_its_time(days: int) -> None:
    # Airflow 3.3 gives an asset-triggered run no data interval: None, None.
    window = scoring_window(
        run_type="asset_triggered",
        run_after=RUN_AFTER,
        interval_start=None,
        interval_end=None,
        rescore_days=days,
    )
    assert (window.start, window.end) == (RUN_AFTER - timedelta(days=days), RUN_AFTER)
    assert "champion changed" in window.why


def test_an_asset_triggered_run_ignores_an_interval_it_might_be_given() -> None:
    window = scoring_window(
        run_type="asset_triggered", run_after=RUN_AFTER, interval_start=RUN_AFTER - timedelta(hours=1),
        interval_end=RUN_AFTER, rescore_days=7,
    )  # fmt: skip
    assert window.start == RUN_AFTER - timedelta(days=7)


@pytest.mark.parametrize(
    ("start", "end"),
    [(None, None), (RUN_AFTER, RUN_AFTER)],  # a manual run without an interval, or an empty one
)
def test_a_manual_run_without_an_interval_scores_the_day_before(start, end) -> None:
    window = scoring_window(run_type="manual", run_after=RUN_AFTER, interval_start=start, interval_end=end)
    assert (window.start, window.end) == (RUN_AFTER - timedelta(days=1), RUN_AFTER)


def test_rescore_days_must_be_positive() -> None:
    with pytest.raises(ConfigError, match="rescore_days"):
        scoring_window(run_type="asset_triggered", run_after=RUN_AFTER, interval_start=None,
                       interval_end=None, rescore_days=0)  # fmt: skip


# --- Targets -----------------------------------------------------------------------------------


def test_targets() -> None:
    assert parse_target("parquet") is None
    assert parse_target("postgres:review_predictions") == "review_predictions"
    assert parse_target("postgres:public.review_predictions") == "public.review_predictions"
    for bad in ("postgres:x; DROP TABLE y", "postgresql://u:p@h/db", "/tmp/p.parquet", "postgres:"):
        with pytest.raises(ConfigError):
            parse_target(bad)


def test_a_table_target_looks_up_its_connection_only_then() -> None:
    asked: list[str] = []

    def connection(conn_id: str) -> str:
        asked.append(conn_id)
        return "postgres://reviews:secret@db:5432/reviews"

    assert resolve_target("parquet", connection, "reviews_db") == "parquet"
    assert asked == []
    url = resolve_target("postgres:review_predictions", connection, "reviews_db")
    assert url == "postgresql://reviews:secret@db:5432/reviews?table=review_predictions"
    assert asked == ["reviews_db"]


# --- Records -----------------------------------------------------------------------------------


def test_records_carry_the_pinned_version_and_label_at_its_threshold() -> None:
    stamp = datetime(2026, 11, 30, 5, 1, tzinfo=UTC)
    records = build_records([3, 1, 2], [0.59, 0.6, 0.95], CHAMPION, stamp, "sentiment_score/run-1")
    assert tuple(records.columns) == PREDICTION_COLUMNS
    assert records["review_id"].tolist() == [3, 1, 2]
    assert records["label"].tolist() == [0, 1, 1]  # at the threshold counts as recommended
    assert set(records["model_version"]) == {7}
    assert set(records["model_name"]) == {"customer-sentiment-analysis"}
    assert set(records["threshold"]) == {0.6}
    assert set(records["dag_run_id"]) == {"sentiment_score/run-1"}
    assert set(records["scored_at"]) == {pd.Timestamp(stamp)}


def test_records_refuse_mismatched_lengths() -> None:
    with pytest.raises(ValueError, match="2 review ids but 1"):
        build_records([1, 2], [0.5], CHAMPION, RUN_AFTER, "r")


def test_reviews_without_text_are_left_out_and_counted() -> None:
    frame = pd.DataFrame({schema.ID: ["1", "2", "3"], schema.TITLE: ["a", "b", "c"],
                          schema.TEXT: ["fine", "  ", None]})  # fmt: skip
    kept, skipped = usable(frame)
    assert kept[schema.ID].tolist() == [1]
    assert skipped == 2


def test_a_review_id_that_is_not_an_integer_is_a_data_error() -> None:
    frame = pd.DataFrame({schema.ID: ["1", "x"], schema.TITLE: ["", ""], schema.TEXT: ["a", "b"]})
    with pytest.raises(DataContractError, match="not integers"):
        usable(frame)


# --- Reading in chunks (sources.iter_reviews, by ingest's rules) --------------------------------


@pytest.mark.parametrize("suffix", [".parquet", ".csv.gz"])
def test_a_file_is_read_whole_in_chunks_of_the_canonical_columns(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"reviews{suffix}"
    data = reviews(2_500)
    if suffix == ".parquet":
        data.to_parquet(path, index=False, row_group_size=1_000)
    else:
        data.to_csv(path, index=False)
    chunks = list(iter_reviews(str(path), 1_000, columns=SCORED_COLUMNS))
    assert [len(c) for c in chunks] == [1_000, 1_000, 500]
    assert all(list(c.columns) == [schema.ID, schema.TITLE, schema.TEXT] for c in chunks)
    assert pd.concat(chunks)[schema.ID].astype(int).tolist() == list(range(2_500))


def test_a_file_without_a_title_column_is_read_with_empty_titles(tmp_path: Path) -> None:
    path = tmp_path / "reviews.csv"
    reviews(10).drop(columns=["Title"]).to_csv(path, index=False)
    (chunk,) = iter_reviews(str(path), 100, columns=SCORED_COLUMNS)
    assert list(chunk.columns) == list(SCORED_COLUMNS)
    assert set(chunk[schema.TITLE]) == {""}


def test_a_file_without_the_text_column_is_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "reviews.csv"
    reviews(10).drop(columns=["Review Text"]).to_csv(path, index=False)
    with pytest.raises(DataContractError, match="missing columns"):
        list(iter_reviews(str(path), 100, columns=SCORED_COLUMNS))


def test_chunk_rows_must_be_positive(tmp_path: Path) -> None:
    path = tmp_path / "reviews.csv"
    reviews(10).to_csv(path, index=False)
    with pytest.raises(ConfigError, match="chunk_rows"):
        list(iter_reviews(str(path), 0))


def _semicolon_file(path: Path) -> None:
    reviews(20).to_csv(path, index=False, sep=";")


def _extra_field_file(path: Path) -> None:
    # The bad row is in the second chunk: chunked reading checks every chunk, not only the first.
    lines = reviews(20).to_csv(index=False).splitlines()
    lines[15] += ",an extra field"
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize(
    ("write", "problem"),
    [
        (_semicolon_file, "the file looks delimited by ';'"),
        (_extra_field_file, "cannot parse: .*Expected 4 fields in line 16, saw 5"),
    ],
    ids=["foreign delimiter", "extra field"],
)
def test_scoring_refuses_a_file_as_ingest_does(tmp_path: Path, write, problem: str) -> None:
    """One reader, one set of rules: a file ingest refuses, scoring refuses with the same words, as
    a data error that no retry can fix (it used to score a ';'-delimited file as one column and
    to let the parser's own error through, which the DAG retries)."""
    path = tmp_path / "reviews.csv"
    write(path)
    with pytest.raises(DataContractError, match=problem) as by_ingest:
        ingest(path, tmp_path / "ingest", min_rows=1)
    out = tmp_path / "run" / "predictions.parquet"
    with pytest.raises(DataContractError, match=problem) as by_scoring:
        score_reviews(str(path), CHAMPION, window=None, target="parquet", output_path=out, dag_run_id="r",
                      chunk_rows=10, model=LengthModel())  # fmt: skip
    assert by_scoring.value.violations == by_ingest.value.violations
    assert list(out.parent.iterdir()) == []  # no predictions, no temporary file


def test_a_window_on_a_file_scores_the_whole_file(tmp_path: Path) -> None:
    source = tmp_path / "reviews.csv"
    reviews(50).to_csv(source, index=False)
    window = Window(RUN_AFTER - timedelta(days=1), RUN_AFTER, "a file has no arrival times")
    out = tmp_path / "p.parquet"
    result = score_reviews(str(source), CHAMPION, window=window, target="parquet", output_path=out,
                           dag_run_id="r", model=LengthModel())  # fmt: skip
    assert result.rows == 40
    assert result.window == "the whole source (a file)"


# --- The stage with a stand-in model ------------------------------------------------------------


def test_score_reviews_writes_one_row_per_review_with_text(tmp_path: Path) -> None:
    source = tmp_path / "reviews.parquet"
    reviews(2_500).to_parquet(source, index=False)
    model = LengthModel()
    out = tmp_path / "run" / "predictions.parquet"
    result = score_reviews(str(source), CHAMPION, window=None, target="parquet", output_path=out,
                           dag_run_id="sentiment_score/r1", chunk_rows=1_000, model=model)  # fmt: skip
    written = pd.read_parquet(out)
    assert result.rows == len(written) == 2_000  # every fifth review has no text
    assert result.skipped_no_text == 500
    assert result.chunks == 3
    assert model.calls == [800, 800, 400]  # one model call per chunk
    assert written["review_id"].is_unique
    assert set(written["model_version"]) == {7}
    assert np.allclose(written["probability"], [len("good " * (i % 5)) / (len("good " * (i % 5)) + 10)
                                                for i in range(2_500) if i % 5])  # fmt: skip
    assert [p.name for p in out.parent.iterdir()] == ["predictions.parquet"]  # no temp file left


def test_a_failed_run_leaves_no_file_and_keeps_an_earlier_one(tmp_path: Path) -> None:
    out = tmp_path / "predictions.parquet"
    out.write_bytes(b"earlier run")
    empty = build_records([], [], CHAMPION, RUN_AFTER, "r")

    def killed_after_one_write() -> None:
        with open_sink("parquet", out, empty) as sink:
            sink.write(build_records([1], [0.9], CHAMPION, RUN_AFTER, "r"))
            raise RuntimeError("killed")

    with pytest.raises(RuntimeError, match="killed"):
        killed_after_one_write()
    assert out.read_bytes() == b"earlier run"
    assert [p.name for p in tmp_path.iterdir()] == ["predictions.parquet"]


def test_a_run_that_scores_nothing_writes_an_empty_file_with_the_columns(tmp_path: Path) -> None:
    out = tmp_path / "predictions.parquet"
    with open_sink("parquet", out, build_records([], [], CHAMPION, RUN_AFTER, "r")):
        pass
    written = pd.read_parquet(out)
    assert written.empty
    assert tuple(written.columns) == PREDICTION_COLUMNS


def test_a_crash_mid_run_removes_the_temporary_file(tmp_path: Path) -> None:
    source = tmp_path / "reviews.parquet"
    reviews(3_000).to_parquet(source, index=False)

    def crash(chunk: int, rows: int) -> None:
        if chunk == 2:
            raise RuntimeError("killed")

    out = tmp_path / "run" / "predictions.parquet"
    with pytest.raises(RuntimeError, match="killed"):
        score_reviews(str(source), CHAMPION, window=None, target="parquet", output_path=out, dag_run_id="r",
                      chunk_rows=1_000, model=LengthModel(), on_chunk=crash)  # fmt: skip
    assert list(out.parent.iterdir()) == []
