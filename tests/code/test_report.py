"""Unit tests of the evaluation report: plots, slice metrics and the model card."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from review_sentiment.metrics import binary_metrics
from review_sentiment.report import MIN_CLASS_PER_SLICE, PLOTS, Scored, rankable, slice_metrics, write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def test_split() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    n = 400
    rating = rng.integers(1, 6, n)
    return pd.DataFrame(
        {
            "review_id": np.arange(n),
            "title": ["t"] * n,
            "review_text": [" ".join(["word"] * int(k)) for k in rng.integers(1, 120, n)],
            "rating": rating,
            "department_name": rng.choice(["Dresses", "Tops", None], n),
            "recommended": (rating >= 4).astype(int),
        }
    )


def _probability(frame: pd.DataFrame, noise: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(frame["recommended"] * 0.6 + rng.random(len(frame)) * noise, 0, 1)


def test_report_writes_every_plot_slices_and_card(test_split: pd.DataFrame, tmp_path: Path) -> None:
    candidate = Scored("candidate v3", _probability(test_split, 0.5), 0.55)
    baseline = Scored("baseline", _probability(test_split, 0.9, seed=1), 0.7)
    out = write_report(
        tmp_path,
        test_split,
        candidate,
        others=[baseline],
        card={
            "model_name": "m",
            "version": "3",
            "run_id": "abc",
            "params": {"architecture": "cnn"},
            "data": {"rows_in": 400, "split_rows": {"test": 400}},
            "decision": "promoted because reasons",
        },
    )
    for name in PLOTS:
        content = (tmp_path / name).read_bytes()
        assert content.startswith(PNG_MAGIC), name
        assert len(content) > 5_000, name  # axes, curves and labels, not an empty canvas
    slices = pd.read_csv(tmp_path / "slices.csv")
    assert set(slices["slice"]) == {"department", "length", "rating"}
    assert set(slices.loc[slices["slice"] == "rating", "value"].astype(str)) == {"1", "2", "3", "4", "5"}
    assert "(none)" in set(slices.loc[slices["slice"] == "department", "value"])
    # Every review is in exactly one bucket of each slice.
    assert (slices.groupby("slice")["n"].sum() == len(test_split)).all()
    card = (tmp_path / "model_card.md").read_text()
    for heading in ("## Data", "## Model", "## Test-split metrics", "## Known limits"):
        assert heading in card
    assert "threshold **0.5500**" in card
    assert "| baseline |" in card
    assert "| candidate v3 |" in card
    assert "promoted because reasons" in card
    assert set(out["metrics"]) == {"candidate v3", "baseline"}
    assert out["metrics"]["candidate v3"]["roc_auc"] > out["metrics"]["baseline"]["roc_auc"]
    # Each model at its own threshold, as the version's tags score it.
    y = test_split["recommended"].to_numpy()
    assert out["metrics"]["baseline"] == binary_metrics(y, baseline.probability, 0.7)
    assert out["metrics"]["baseline"] != binary_metrics(y, baseline.probability, 0.5)
    accuracy = f"{out['metrics']['baseline']['accuracy']:.4f}"
    assert any(line.startswith("| baseline |") and accuracy in line for line in card.splitlines())
    assert "| model | roc_auc | accuracy | f1_not_recommended | ece |" in card
    # Only the run's own baseline (by its name) gives a margin line.
    assert "margin over this run's baseline" not in card


def test_card_states_the_margin_over_the_baseline_and_the_calibration(
    test_split: pd.DataFrame, tmp_path: Path
) -> None:
    from review_sentiment.report import BASELINE_NAME, calibration_note

    candidate = Scored("candidate v4", _probability(test_split, 0.5), 0.55)
    baseline = Scored(BASELINE_NAME, _probability(test_split, 0.9, seed=1), 0.7)
    note = calibration_note({"val_ece_uncalibrated": 0.061, "calibrated": 1.0, "val_ece": 0.012})
    out = write_report(
        tmp_path,
        test_split,
        candidate,
        others=[baseline],
        card={"model_name": "m", "version": "4", "run_id": "r", "params": {}, "data": {}, "decision": "d",
              "calibration": note},
    )  # fmt: skip
    scores = out["metrics"]
    gain = scores["candidate v4"]["roc_auc"] - scores[BASELINE_NAME]["roc_auc"]
    assert gain > 0
    assert f"ROC AUC margin over this run's baseline: **{gain:+.4f}**" in out["model_card"]
    assert "Platt-scaled on the validation split" in out["model_card"]
    assert "0.0610 (> 0.03) before and 0.0120 after" in out["model_card"]
    kept = calibration_note({"val_ece_uncalibrated": 0.02, "calibrated": 0.0})
    assert kept == "not recalibrated: validation expected calibration error 0.0200 (limit 0.03)"
    assert calibration_note({}) == ""  # a run from before calibration existed


def test_slices_too_small_to_rank_are_listed_apart(test_split: pd.DataFrame, tmp_path: Path) -> None:
    # Ratings 4 and 5 hold no not-recommended review here, rating 1 only a few recommended ones.
    frame = test_split.copy()
    frame.loc[frame.index[:3], ["rating", "recommended"]] = [1, 1]
    out = write_report(
        tmp_path, frame, Scored("c", _probability(frame, 0.5), 0.5), card={"model_name": "m", "version": "1",
        "run_id": "r", "params": {}, "data": {}, "decision": "d"},
    )  # fmt: skip
    card = out["model_card"]
    weakest = card.split("## Weakest slices")[1].split("Too small to rank")[0]
    small = card.split("Too small to rank")[1].split("\n")[0]
    assert "rating = 5" not in weakest
    assert "rating = 1:" not in weakest
    assert "rating = 5" in small
    assert "rating = 1 (" in small
    slices = pd.read_csv(tmp_path / "slices.csv")
    ranked = slices[rankable(slices)]
    assert (ranked["not_recommended"] >= MIN_CLASS_PER_SLICE).all()
    assert (ranked["n"] - ranked["not_recommended"] >= MIN_CLASS_PER_SLICE).all()


def test_single_class_slices_report_accuracy_without_auc(test_split: pd.DataFrame) -> None:
    slices = slice_metrics(test_split, _probability(test_split, 0.5), 0.5)
    five_star = slices[(slices["slice"] == "rating") & (slices["value"] == "5")].iloc[0]
    assert np.isnan(five_star["roc_auc"])  # every 5-star review here is recommended
    assert 0.0 <= five_star["accuracy"] <= 1.0
    assert five_star["not_recommended_share"] == 0.0


def test_probabilities_of_the_wrong_length_are_refused(test_split: pd.DataFrame, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="baseline: 3 probabilities for 400 reviews"):
        write_report(
            tmp_path,
            test_split,
            Scored("c", _probability(test_split, 0.5), 0.5),
            others=[Scored("baseline", np.zeros(3), 0.5)],
            card={},
        )
