"""Unit tests of prediction monitoring without labels: the bins, the PSI and its epsilon, the
reference record, the alert decision and the alert mail (distribution.py, watch.py)."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from review_sentiment.config import Settings
from review_sentiment.distribution import (
    PSI_EPSILON,
    Reference,
    Summary,
    bin_fractions,
    decile_edges,
    psi,
    reference_of,
    summarise,
)
from review_sentiment.notify import message
from review_sentiment.watch import WatchPolicy, WatchResult, alert_for, run_step

RNG = np.random.default_rng(20)
# A confident classifier's test split: most reviews near 1, a fifth near 0.
TEST_SPLIT = np.concatenate([RNG.beta(8, 1, 1_600), RNG.beta(1, 6, 400)])


# --- PSI ---------------------------------------------------------------------------------------


def test_psi_of_a_distribution_with_itself_is_zero() -> None:
    assert psi([0.1, 0.2, 0.7], [0.1, 0.2, 0.7]) == 0.0


def test_psi_is_the_sum_of_each_bins_shift_times_its_log_ratio() -> None:
    expected = (0.3 - 0.5) * math.log(0.3 / 0.5) + (0.7 - 0.5) * math.log(0.7 / 0.5)
    assert psi([0.5, 0.5], [0.3, 0.7]) == pytest.approx(expected)
    assert psi([0.3, 0.7], [0.5, 0.5]) == pytest.approx(expected)  # symmetric


def test_an_empty_bin_on_either_side_is_a_large_but_finite_shift() -> None:
    emptied = psi([0.5, 0.5], [0.0, 1.0])
    appeared = psi([0.0, 1.0], [0.5, 0.5])
    floor = (0.5 - PSI_EPSILON) * math.log(0.5 / PSI_EPSILON) + 0.5 * math.log(2)
    assert math.isfinite(emptied)
    assert math.isfinite(appeared)
    assert emptied == pytest.approx(floor) == pytest.approx(appeared)
    assert emptied > 2  # far above any alert threshold
    assert psi([0.0, 1.0], [0.0, 1.0]) == 0.0  # empty on both sides: no shift


def test_psi_refuses_bins_that_do_not_match_or_a_non_positive_epsilon() -> None:
    with pytest.raises(ValueError, match="3 reference bins but 2 actual bins"):
        psi([0.2, 0.3, 0.5], [0.5, 0.5])
    with pytest.raises(ValueError, match="epsilon must be positive"):
        psi([1.0], [1.0], epsilon=0)


def test_a_sample_of_the_same_population_stays_under_the_threshold_and_a_shifted_one_passes_it() -> None:
    reference = reference_of(TEST_SPLIT, threshold=0.5)
    same = np.concatenate([RNG.beta(8, 1, 400), RNG.beta(1, 6, 100)])  # the same mix, n = 500
    worse = np.concatenate([RNG.beta(8, 1, 250), RNG.beta(1, 6, 250)])  # half not recommended
    assert psi(reference.fractions, bin_fractions(same, reference.edges)) < 0.05
    assert psi(reference.fractions, bin_fractions(worse, reference.edges)) > 0.2


# --- Bins and the reference --------------------------------------------------------------------


def test_decile_edges_split_the_reference_into_tenths() -> None:
    edges = decile_edges(TEST_SPLIT)
    fractions = bin_fractions(TEST_SPLIT, edges)
    assert len(edges) == 9
    assert list(edges) == sorted(edges)
    assert len(fractions) == 10
    assert sum(fractions) == pytest.approx(1.0)
    assert all(f == pytest.approx(0.1, abs=0.001) for f in fractions)


def test_a_model_with_few_distinct_outputs_gets_merged_bins() -> None:
    toy = np.array([0.2] * 50 + [0.6] * 30 + [0.9] * 20)
    edges = decile_edges(toy)
    assert edges == (0.6, 0.9)  # repeated deciles merged; none at the minimum (an empty bin)
    assert bin_fractions(toy, edges) == (0.5, 0.3, 0.2)  # a value on an edge: the bin above


def test_the_outer_bins_are_open_and_nothing_scored_is_all_zeros() -> None:
    assert bin_fractions([0.0, 1.0], (0.3, 0.7)) == (0.5, 0.0, 0.5)
    assert bin_fractions([], (0.3, 0.7)) == (0.0, 0.0, 0.0)


@pytest.mark.parametrize("bad", [[0.5, float("nan")], [0.5, 1.2], [-0.1], [float("inf")]])
def test_probabilities_outside_0_1_are_a_clear_error(bad: list[float]) -> None:
    with pytest.raises(ValueError, match="not finite numbers in \\[0, 1\\]"):
        bin_fractions(bad, (0.5,))


def test_no_probabilities_make_no_reference() -> None:
    with pytest.raises(ValueError, match="bins need probabilities"):
        decile_edges([])


def test_the_reference_round_trips_through_json() -> None:
    reference = reference_of(TEST_SPLIT, threshold=0.55)
    back = Reference.from_dict(json.loads(json.dumps(reference.to_dict())))
    assert back == reference
    assert back.summary.count == 2_000
    assert back.summary.share_not_recommended == pytest.approx(float((TEST_SPLIT < 0.55).mean()))
    assert back.threshold == 0.55


@pytest.mark.parametrize(
    ("change", "match"),
    [({"format": 2}, "reference format 2"), ({"fractions": [1.0]}, "one more fraction")],
)
def test_a_reference_this_code_cannot_read_is_refused(change: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Reference.from_dict({**reference_of(TEST_SPLIT, 0.5).to_dict(), **change})


def test_summary_counts_the_mean_and_the_share_below_the_threshold() -> None:
    assert summarise([0.2, 0.4, 0.9, 1.0], threshold=0.5) == Summary(4, 0.625, 0.5)
    assert summarise([], threshold=0.5) == Summary(0, None, None)


# --- The alert ---------------------------------------------------------------------------------

REFERENCE = Reference((0.5,), (0.2, 0.8), Summary(2_000, 0.8, 0.2), 0.5)
POLICY = WatchPolicy(psi_alert=0.2, label_share_shift=0.10, min_reviews=200)


@pytest.mark.parametrize(
    ("count", "shift", "share", "reference", "expected"),
    [
        (1_000, 0.05, 0.22, REFERENCE, None),
        (
            1_000,
            0.35,
            0.22,
            REFERENCE,
            "the PSI of the probabilities against the test split is 0.350, above 0.200",
        ),
        (1_000, 0.05, 0.35, REFERENCE, "35.0% of the reviews are labelled not recommended, against 20.0%"),
        (1_000, 0.05, 0.05, REFERENCE, "5.0% of the reviews are labelled not recommended"),  # both ways
        (1_000, 0.35, 0.90, REFERENCE, "above 0.200; 90.0% of the reviews"),  # both reasons
        (199, 0.90, 0.90, REFERENCE, None),  # too few to tell from noise
        (1_000, None, 0.90, None, None),  # no reference: nothing to compare with
    ],
)
def test_the_alert_needs_a_reference_enough_reviews_and_a_shift_past_the_policy(
    count: int, shift: float | None, share: float, reference: Reference | None, expected: str | None
) -> None:
    alert = alert_for(Summary(count, 0.7, share), shift, reference, POLICY)
    assert (alert is None) if expected is None else (expected in alert), alert


def test_the_default_policy_is_the_configured_one() -> None:
    assert WatchPolicy() == WatchPolicy(psi_alert=0.2, label_share_shift=0.10, min_reviews=200)


def test_the_step_is_the_runs_second_in_utc() -> None:
    due = datetime(2026, 12, 7, 6, 30, 15, tzinfo=timezone(timedelta(hours=1)))
    assert run_step(due) == 20261207053015
    assert run_step(datetime(2026, 12, 7, 5, 0, tzinfo=UTC)) < run_step(
        datetime(2026, 12, 8, 5, 0, tzinfo=UTC)
    )


def test_the_alert_mail_names_the_version_the_reason_and_the_figures() -> None:
    found = WatchResult(
        "customer-sentiment-analysis", "7", 20261207050000, count=742, mean_probability=0.31234,
        share_not_recommended=0.8, psi=1.234, reference_share=0.18, alert="the PSI <is> 1.234",
    )  # fmt: skip
    settings = Settings.from_env({"MLFLOW_UI_URL": "http://mlflow.test:5000"})
    subject, body = message(found.outcome("sentiment_score", "manual__1"), settings)
    assert subject == "[sentiment_score] prediction alert: champion v7's predictions moved (run manual__1)"
    assert "The predictions of champion version 7 moved away from those on its test split" in body
    assert "<td>the PSI &lt;is&gt; 1.234</td>" in body  # escaped
    figures = (
        "742 reviews, mean probability 0.3123, 80.0% labelled not recommended (test split: 18.0%), PSI 1.234"
    )
    assert f"<td>{figures}</td>" in body
    assert "http://mlflow.test:5000/#/models/customer-sentiment-analysis/versions/7" in body


def test_a_point_without_a_reference_or_reviews_says_so_in_its_figures() -> None:
    bare = WatchResult("m", "3", 1, count=500, mean_probability=0.7, share_not_recommended=0.2)
    assert bare.figures() == "500 reviews, mean probability 0.7000, 20.0% labelled not recommended, no PSI"
    assert WatchResult("m", "3", 1).figures() == "no reviews scored"


def test_the_probabilities_are_read_back_from_the_runs_parquet_file(tmp_path: Path) -> None:
    import pandas as pd

    from review_sentiment.predictions import read_probabilities

    path = tmp_path / "predictions.parquet"
    pd.DataFrame({"review_id": [1, 2], "probability": [0.25, 0.75]}).to_parquet(path)
    assert read_probabilities("parquet", path, "sentiment_score/r", "3").tolist() == [0.25, 0.75]
