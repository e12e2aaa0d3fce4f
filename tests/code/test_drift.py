"""Unit tests of the label-drift check and of the promoted run's reference statistics."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest

from review_sentiment import schema
from review_sentiment.drift import (
    DEFAULT_DRIFT_THRESHOLD,
    check_label_drift,
    label_stats,
    load_label_stats,
    load_reference_stats,
    reference_stats_path,
    save_reference_stats,
)
from review_sentiment.errors import DataContractError, UnsafePathError
from review_sentiment.layout import LABEL_STATS_NAME, STATE_DIR, ArtifactLayout

MODEL = "customer-sentiment-analysis"


def _stats(share: float, rows: int = 1000) -> dict:
    positive = round(share * rows)
    return {
        "rows": rows,
        "positive": positive,
        "negative": rows - positive,
        "positive_share": positive / rows,
    }


def test_label_stats_counts_and_share() -> None:
    frame = pd.DataFrame({schema.LABEL: [1, 1, 1, 0, 1, 0, 1, 1]})
    assert label_stats(frame) == {"rows": 8, "positive": 6, "negative": 2, "positive_share": 0.75}


@pytest.mark.parametrize("labels", [[], [1, 0, 2], [1, None, 0]], ids=["empty", "label-2", "missing"])
def test_label_stats_refuses_unvalidated_labels(labels: list) -> None:
    with pytest.raises(DataContractError, match="label statistics need"):
        label_stats(pd.DataFrame({schema.LABEL: pd.array(labels, dtype="Int64")}))


def test_no_reference_is_no_drift() -> None:
    result = check_label_drift(_stats(0.82), None)
    assert not result.drifted
    assert result.previous_share is None
    assert result.delta is None
    assert "no reference" in result.reason
    assert "gate.drift" not in result.to_tags()


@pytest.mark.parametrize(
    ("current", "previous", "drifted"),
    [
        (0.82, 0.82, False),
        (0.75, 0.82, False),  # 0.07 < 0.10
        (0.91, 0.82, False),
        (0.70, 0.82, True),  # 0.12 down
        (0.95, 0.82, True),  # 0.13 up
        (0.50, 0.82, True),
    ],
)
def test_drift_is_the_absolute_share_difference(current: float, previous: float, drifted: bool) -> None:
    result = check_label_drift(_stats(current), _stats(previous), DEFAULT_DRIFT_THRESHOLD)
    assert result.drifted is drifted
    assert result.delta == pytest.approx(current - previous)
    assert result.current_share == pytest.approx(current)
    assert result.previous_share == pytest.approx(previous)


def test_the_threshold_itself_is_not_drift() -> None:
    # Exact binary fractions, so the comparison is not at the mercy of rounding.
    assert not check_label_drift(_stats(0.75, 4), _stats(0.5, 4), threshold=0.25).drifted
    assert check_label_drift(_stats(1.0, 4), _stats(0.5, 4), threshold=0.25).drifted


def test_drift_reason_is_one_line_with_the_numbers_and_the_run() -> None:
    previous = {**_stats(0.82), "pipeline_run_id": "sentiment_retrain/scheduled__2026-11-23"}
    result = check_label_drift(_stats(0.60), previous, 0.10)
    assert result.drifted
    assert result.reason == (
        "positive-label share 0.600 vs 0.820 in the last promoted run "
        "(sentiment_retrain/scheduled__2026-11-23): |delta| 0.220 above the threshold 0.10"
    )
    tags = result.to_tags()
    assert tags["gate.drift"] == result.reason
    assert tags["drift.delta"] == "-0.220000"
    assert tags["drift.reference_positive_share"] == "0.820000"
    assert all(isinstance(v, str) for v in tags.values())


@pytest.mark.parametrize("threshold", [0.0, -0.1, 1.0, 2.0])
def test_threshold_out_of_range_is_refused(threshold: float) -> None:
    with pytest.raises(ValueError, match="drift threshold must be in"):
        check_label_drift(_stats(0.8), _stats(0.8), threshold)


@pytest.mark.parametrize(
    "bad", [{}, {"positive_share": "x"}, {"positive_share": 1.5}, {"positive_share": float("nan")}]
)
def test_malformed_stats_are_refused(bad: dict) -> None:
    with pytest.raises(ValueError, match="positive_share"):
        check_label_drift(_stats(0.8), bad)
    with pytest.raises(ValueError, match="positive_share"):
        check_label_drift(bad, _stats(0.8))


def test_reference_round_trip_under_state(tmp_path: Path) -> None:
    assert load_reference_stats(ArtifactLayout(tmp_path), MODEL) is None
    path = save_reference_stats(ArtifactLayout(tmp_path), MODEL, _stats(0.8), pipeline_run_id="dag/run-1")
    assert path == (tmp_path / STATE_DIR / MODEL / LABEL_STATS_NAME).resolve()
    loaded = load_reference_stats(ArtifactLayout(tmp_path), MODEL)
    assert loaded["positive_share"] == 0.8
    assert loaded["pipeline_run_id"] == "dag/run-1"
    assert "saved_at" in loaded
    # The next save replaces it, leaving no temporary file beside it.
    save_reference_stats(ArtifactLayout(tmp_path), MODEL, _stats(0.7), pipeline_run_id="dag/run-2")
    assert load_reference_stats(ArtifactLayout(tmp_path), MODEL)["pipeline_run_id"] == "dag/run-2"
    assert [p.name for p in path.parent.iterdir()] == [LABEL_STATS_NAME]
    # Models keep separate references.
    assert load_reference_stats(ArtifactLayout(tmp_path), "other-model") is None


def test_failed_save_keeps_the_previous_reference(tmp_path: Path) -> None:
    save_reference_stats(ArtifactLayout(tmp_path), MODEL, _stats(0.8), pipeline_run_id="dag/run-1")
    with pytest.raises(ValueError, match="positive_share"):
        save_reference_stats(ArtifactLayout(tmp_path), MODEL, {"rows": 3}, pipeline_run_id="dag/run-2")
    assert load_reference_stats(ArtifactLayout(tmp_path), MODEL)["pipeline_run_id"] == "dag/run-1"


@pytest.mark.parametrize("name", ["../escape", "a/b", "", "..", ".hidden", "x\x00y"])
def test_model_name_cannot_leave_the_state_folder(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="not usable as a folder name"):
        reference_stats_path(ArtifactLayout(tmp_path), name)


def test_state_symlinked_out_of_the_root_is_refused(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    os.symlink(outside, root / STATE_DIR)
    with pytest.raises(UnsafePathError, match="outside"):
        save_reference_stats(ArtifactLayout(root), MODEL, _stats(0.8), pipeline_run_id="dag/run")
    assert list(outside.iterdir()) == []


def test_label_stats_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / LABEL_STATS_NAME
    path.write_text(json.dumps(_stats(0.8)))
    assert load_label_stats(path)["positive"] == 800
    path.write_text(json.dumps({"rows": 1}))
    with pytest.raises(ValueError, match="positive_share"):
        load_label_stats(path)
