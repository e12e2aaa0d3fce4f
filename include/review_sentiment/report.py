"""The evaluation report of a candidate version: curves, slices and a model card.

Written to a folder (PNG, CSV, JSON, markdown), then logged to the candidate's MLflow run under
``evaluation/`` by ``register``; the model card also becomes the version's description.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from review_sentiment import schema
from review_sentiment.artifacts import atomic_file, write_json
from review_sentiment.metrics import MINORITY_LABEL, binary_metrics
from review_sentiment.names import PARAM_GRID_POINT

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

# Review length in words: sequence models truncate long reviews, and short reviews carry little signal.
LENGTH_BUCKETS = (0, 20, 40, 60, 80, 10_000)
SLICE_COLUMNS = {"department": "department_name", "length": "length_bucket", "rating": "rating"}
ROC_PNG, PR_PNG, CONFUSION_PNG, CALIBRATION_PNG = PLOTS = (
    "roc.png",
    "precision_recall.png",
    "confusion_matrix.png",
    "calibration.png",
)

BASELINE_NAME = "TF-IDF + LR baseline"  # the baseline's row in the card's metrics table

# A slice with fewer reviews than this of either class has no meaningful ROC AUC to rank by.
MIN_CLASS_PER_SLICE = 20
# Grid-point parameters worth a line in the model card; the sequence ones only for models that
# read word sequences.
_CARD_PARAMS = (
    "architecture", "embedding_dim", "conv_filters", "dense_units", "dropout", "max_tokens",
    "class_weight", "rating_weight", "learning_rate", "batch_size",
)  # fmt: skip
_SEQUENCE_PARAMS = frozenset({"embedding_dim", "conv_filters", "max_tokens"})


@dataclass(frozen=True)
class Scored:
    """One model's probabilities of "recommended" on the test split, and its own threshold."""

    name: str
    probability: np.ndarray
    threshold: float


def slice_metrics(frame: pd.DataFrame, probability: np.ndarray, threshold: float) -> pd.DataFrame:
    """Metrics per department, review-length bucket and rating, one row per slice value.

    ROC AUC is NaN in a slice with one class (most 5-star reviews recommend): that is a fact
    about the slice, not a failure, so ``n`` and the class counts are reported beside it.
    """
    import numpy as np
    import pandas as pd

    words = frame[schema.TEXT].fillna("").astype(str).str.split().str.len()
    bounds = itertools.pairwise(LENGTH_BUCKETS)
    labels = [f"{lo}-{hi - 1}" if hi < LENGTH_BUCKETS[-1] else f"{lo}+" for lo, hi in bounds]
    data = pd.DataFrame(
        {
            "department_name": frame["department_name"].fillna("(none)").astype(str),
            "length_bucket": pd.cut(words, LENGTH_BUCKETS, right=False, labels=labels).astype(str),
            "rating": frame["rating"].astype("Int64").astype(str),
            "y": frame[schema.LABEL].to_numpy(dtype=int),
            "p": np.asarray(probability, dtype=float),
        }
    )
    rows = []
    for slice_name, column in SLICE_COLUMNS.items():
        for value, part in data.groupby(column, sort=True):
            scores = binary_metrics(part["y"], part["p"], threshold)
            if part["y"].nunique() < 2:  # AUC undefined; accuracy and F1 still say something
                predicted = (part["p"] >= threshold).astype(int)
                scores["accuracy"] = float((predicted == part["y"]).mean())
            minority = int((part["y"] == MINORITY_LABEL).sum())
            rows.append(
                {
                    "slice": slice_name,
                    "value": str(value),
                    "n": len(part),
                    "not_recommended": minority,
                    "not_recommended_share": minority / len(part),
                    **scores,
                }
            )
    return pd.DataFrame(rows)


def _plots(out_dir: Path, y: np.ndarray, models: list[Scored]) -> None:
    import matplotlib

    matplotlib.use("Agg")  # headless workers
    import matplotlib.pyplot as plt
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import ConfusionMatrixDisplay, precision_recall_curve, roc_auc_score, roc_curve

    def save(fig: Any, name: str) -> None:
        with atomic_file(out_dir / name) as tmp:
            fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
        plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 5))
    for model in models:
        fpr, tpr, _ = roc_curve(y, model.probability)
        ax.plot(fpr, tpr, label=f"{model.name} (AUC {roc_auc_score(y, model.probability):.4f})")
    ax.plot([0, 1], [0, 1], "k:", linewidth=0.8)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC, test split")
    ax.legend(loc="lower right")
    save(fig, ROC_PNG)

    # Precision-recall of the class that matters: not recommended (score = 1 - p).
    fig, ax = plt.subplots(figsize=(5, 5))
    for model in models:
        precision, recall, _ = precision_recall_curve(y == MINORITY_LABEL, 1.0 - model.probability)
        ax.plot(recall, precision, label=model.name)
    ax.set(xlabel="recall (not recommended)", ylabel="precision", title="Precision-recall, test split")
    ax.legend(loc="lower left")
    save(fig, PR_PNG)

    candidate = models[0]
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ConfusionMatrixDisplay.from_predictions(
        y,
        (candidate.probability >= candidate.threshold).astype(int),
        labels=[0, 1],
        display_labels=["not recommended", "recommended"],
        ax=ax,
        colorbar=False,
    )
    ax.set_title(f"{candidate.name} at threshold {candidate.threshold:.3f}")
    save(fig, CONFUSION_PNG)

    fig, ax = plt.subplots(figsize=(5, 5))
    for model in models:
        observed, predicted = calibration_curve(y, model.probability, n_bins=10, strategy="quantile")
        ax.plot(predicted, observed, marker="o", label=model.name)
    ax.plot([0, 1], [0, 1], "k:", linewidth=0.8)
    ax.set(xlabel="mean predicted P(recommended)", ylabel="observed share recommended", title="Calibration")
    ax.legend(loc="upper left")
    save(fig, CALIBRATION_PNG)


def _fmt(value: float) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.4f}"


def rankable(slices: pd.DataFrame) -> pd.Series:
    """Slices with at least ``MIN_CLASS_PER_SLICE`` reviews of each class: their ROC AUC means
    something. The others are listed apart, never called weakest."""
    return (slices["not_recommended"] >= MIN_CLASS_PER_SLICE) & (
        slices["n"] - slices["not_recommended"] >= MIN_CLASS_PER_SLICE
    )


def model_card(
    *,
    model_name: str,
    version: str | None,
    run_id: str,
    params: Mapping[str, Any],
    threshold: float,
    metrics: Mapping[str, Mapping[str, float]],
    data: Mapping[str, Any],
    slices: pd.DataFrame,
    decision: str,
    calibration: str = "",
) -> str:
    """A short markdown model card: data, splits, metrics, threshold, calibration, the margin
    over the run's baseline, slices, known limits."""
    sections = [
        [
            f"# {model_name} version {version or '(candidate)'}",
            "",
            "Predicts whether a customer recommends the item (`Recommended IND`) from the review title",
            "and text of the Women's Clothing E-Commerce Reviews schema.",
        ],
        _data_section(data),
        _model_section(run_id, params, threshold, calibration),
        [*_metrics_section(metrics), f"Gate: {decision}"],
        _slices_section(slices),
        list(_KNOWN_LIMITS),
    ]
    return "\n\n".join("\n".join(lines) for lines in sections)


_METRIC_COLUMNS = ("roc_auc", "accuracy", "f1_not_recommended", "ece")
_KNOWN_LIMITS = (
    "## Known limits",
    "- English reviews of women's clothing from one retailer; other domains are untested.",
    "- Text only: the star rating is not an input. Reviews of 3 stars are split almost evenly",
    "  between recommending and not, and carry most of the errors.",
    "- Very short reviews (a few words) carry little signal; see the length slices.",
    "- A short text with no opinion sits near the threshold, where a colour or garment word",
    '  can tip the label ("skirt in white": white skirts draw see-through complaints).',
    "- Labels are self-reported; some reviews contradict their own label.",
)


def _data_section(data: Mapping[str, Any]) -> list[str]:
    splits = ", ".join(f"{k} {v}" for k, v in data.get("split_rows", {}).items())
    return [
        "## Data",
        f"- reviews with text: {data.get('rows_in', 'n/a')}; after removing duplicate texts and",
        f"  texts empty once cleaned: {splits}",
        "- split: train 80 / validation 10 / test 10 by a keyed hash of the review id, so a review",
        "  keeps its split as data grows; duplicates are decided on the cleaned text, so no text is",
        "  in two splits",
        f"- preprocessing: {data.get('preprocess', {})}",
    ]


def _model_section(run_id: str, params: Mapping[str, Any], threshold: float, calibration: str) -> list[str]:
    return [
        "## Model",
        f"- MLflow run `{run_id}`; grid point: " + ", ".join(f"{k}={v}" for k, v in params.items()),
        f"- decision threshold **{threshold:.4f}** on P(recommended), chosen on the validation split",
        "  as the F1-optimal cut for the not-recommended class; `predict` returns `probability` and",
        "  `label` (1 = recommended)",
        *([f"- probabilities: {calibration}"] if calibration else []),
    ]


def _metrics_section(metrics: Mapping[str, Mapping[str, float]]) -> list[str]:
    """The test-split table (the candidate first), and its ROC AUC margin over the baseline."""
    lines = [
        "## Test-split metrics (each model at its own threshold)",
        "| model | " + " | ".join(_METRIC_COLUMNS) + " |",
        "|---|" + "---|" * len(_METRIC_COLUMNS),
        *(
            f"| {n} | " + " | ".join(_fmt(m.get(k, math.nan)) for k in _METRIC_COLUMNS) + " |"
            for n, m in metrics.items()
        ),
        "",
        "`ece`: expected calibration error (ten equal-width probability bins; 0 = calibrated).",
        "",
    ]
    scored = list(metrics.values())
    baseline = metrics.get(BASELINE_NAME)
    if baseline is not None and scored:
        gain = scored[0]["roc_auc"] - baseline["roc_auc"]
        lines += [f"ROC AUC margin over this run's baseline: **{gain:+.4f}**", ""]
    return lines


def _slices_section(slices: pd.DataFrame) -> list[str]:
    """The three weakest rankable slices by ROC AUC, and the slices too small to rank."""
    ranked = rankable(slices)
    worst = [
        f"- {r.slice} = {r.value}: ROC AUC {_fmt(r.roc_auc)} on {r.n} reviews ({r.not_recommended} not "
        "recommended)"
        for r in slices[ranked].sort_values("roc_auc").head(3).itertuples()
    ]
    small = ", ".join(
        f"{r.slice} = {r.value} ({r.n}, {r.not_recommended} not rec.)" for r in slices[~ranked].itertuples()
    )
    return [
        f"## Weakest slices (at least {MIN_CLASS_PER_SLICE} reviews of each class)",
        *(worst or ["- none with enough reviews of both classes"]),
        "",
        f"Too small to rank (fewer than {MIN_CLASS_PER_SLICE} of a class): {small or 'none'}.",
    ]


def card_facts(model_name: str, version: str, run: Any, data: Any, decision: str) -> dict[str, Any]:
    """What the model card says besides the metrics: the run's grid point (read back from its
    ``grid_point`` param), the data it was trained on and the gate's reason.

    Args:
        model_name: Registered model name.
        version: The version the card describes.
        run: The candidate's MLflow run.
        data: The ``tokenize.Tokenized`` output the run trained on.
        decision: The gate's reason.
    """
    from review_sentiment.artifacts import read_json
    from review_sentiment.model import GridPoint

    point = GridPoint.from_json(run.data.params[PARAM_GRID_POINT])
    shown = [k for k in _CARD_PARAMS if point.uses_tokens or k not in _SEQUENCE_PARAMS]
    manifest = data.manifest
    return {
        "model_name": model_name,
        "version": version,
        "run_id": run.info.run_id,
        "params": {k: getattr(point, k) for k in shown},
        "data": {
            "rows_in": manifest.get("rows_in"),
            "split_rows": {k: sum(v.values()) for k, v in manifest.get("label_counts", {}).items()},
            "preprocess": {k: v for k, v in read_json(data.settings_path).items() if k != "stopwords"},
        },
        "decision": decision,
        "calibration": calibration_note(run.data.metrics),
    }


def calibration_note(metrics: Mapping[str, float]) -> str:
    """What ``train`` did to the probabilities, from the run's metrics ("" for older runs)."""
    from review_sentiment.calibration import ECE_LIMIT

    if "val_ece_uncalibrated" not in metrics:
        return ""
    before = metrics["val_ece_uncalibrated"]
    if metrics.get("calibrated"):
        return (
            f"Platt-scaled on the validation split, whose expected calibration error was {before:.4f} "
            f"(> {ECE_LIMIT}) before and {metrics.get('val_ece', math.nan):.4f} after"
        )
    return f"not recalibrated: validation expected calibration error {before:.4f} (limit {ECE_LIMIT})"


def write_report(
    out_dir: str | Path,
    test: pd.DataFrame,
    candidate: Scored,
    *,
    others: list[Scored] | None = None,
    card: Mapping[str, Any],
) -> dict[str, Any]:
    """Write plots, slice metrics and the model card of ``candidate`` into ``out_dir``.

    Args:
        out_dir: Folder for the report files.
        test: The test split (raw text, label, rating, department).
        candidate: The candidate's test probabilities and threshold.
        others: Models drawn beside it (the baseline, the current champion), each scored at its
            own threshold, as the version's tags score them.
        card: :func:`card_facts`.

    Returns:
        The metrics of every model at its own threshold and the model card text.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    y = test[schema.LABEL].to_numpy(dtype=int)
    models = [candidate, *(others or [])]
    for model in models:
        if len(model.probability) != len(y):
            raise ValueError(f"{model.name}: {len(model.probability)} probabilities for {len(y)} reviews")
    _plots(out_dir, y, models)
    slices = slice_metrics(test, candidate.probability, candidate.threshold)
    with atomic_file(out_dir / "slices.csv") as tmp:
        slices.to_csv(tmp, index=False)
    metrics = {model.name: binary_metrics(y, model.probability, model.threshold) for model in models}
    text = model_card(threshold=candidate.threshold, metrics=metrics, slices=slices, **card)
    with atomic_file(out_dir / "model_card.md") as tmp:
        tmp.write_text(text + "\n")
    thresholds = {model.name: model.threshold for model in models}
    write_json(out_dir / "metrics.json", {"thresholds": thresholds, "metrics": metrics})
    return {"metrics": metrics, "model_card": text}
