"""Part ``serving``: ``load_model(...).predict`` on every real review with text, per default-grid
architecture, the registered form against the legacy one (Keras with TextVectorization), on the
same briefly trained core."""

from __future__ import annotations

import argparse
import shutil
import statistics
from pathlib import Path
from typing import Any

from bench.common import BENCH_DIR, log, snapshot, timed

SERVING_EPOCHS = 2  # enough for a core that is not constant; scoring time does not depend on it
FIGURES: dict[str, tuple[str, float, str]] = {
    "serving_reviews_per_second": (">=", 10000.0, "/s"),
    "serving_legacy_reviews_per_second": (">=", 0.0, "/s"),  # today's path, for the ratio
    "serving_speedup": (">=", 10.0, "x"),
}


def _log_pyfunc(artifacts: dict[str, Path]) -> str:
    """Log a pyfunc as train does (models from code) into the active MLflow store; its URI."""
    import mlflow.pyfunc

    from review_sentiment.config import PACKAGE_DIR
    from review_sentiment.train import input_example, model_signature

    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(PACKAGE_DIR / "pyfunc_entry.py"),
            code_paths=[str(PACKAGE_DIR)],
            artifacts={k: str(v) for k, v in artifacts.items()},
            signature=model_signature(),
            input_example=input_example(),
        )
    return info.model_uri


def _scoring_seconds(uri: str, request: Any, repeats: int, warm_rows: int | None) -> tuple[list[float], Any]:
    """Load the pyfunc, warm it up, then time ``predict`` on the whole request ``repeats`` times."""
    import mlflow.pyfunc

    model = mlflow.pyfunc.load_model(uri)
    model.predict(request if warm_rows is None else request.head(warm_rows))
    runs, out = [], None
    for _ in range(repeats):
        seconds, out = timed(lambda: model.predict(request))
        runs.append(seconds)
    return runs, out


def measure(repeats: int) -> dict[str, Any]:
    """``load_model(...).predict`` on every real review with text, new path vs legacy, per
    default-grid architecture, on the same briefly trained core."""
    import mlflow
    import numpy as np
    import pandas as pd

    from bench.cores import brief_core, write_core, write_legacy
    from review_sentiment import names, schema
    from review_sentiment.artifacts import write_json
    from review_sentiment.cleaning_rules import PreprocessSettings
    from review_sentiment.model import GRIDS, GridPoint
    from review_sentiment.preprocess import preprocess
    from review_sentiment.scoring import model_request
    from review_sentiment.tokenize import Tokenized, tokenize

    work = BENCH_DIR / "serving"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    settings = PreprocessSettings()
    source = snapshot(1)
    data = Tokenized(tokenize(preprocess(source, work / "preprocess", settings), work / "tokenize"))
    frame = pd.read_parquet(source)
    request = model_request(frame[frame[schema.TEXT].fillna("").str.strip() != ""])
    decision = write_json(work / "decision.json", {names.DECISION_THRESHOLD_KEY: 0.5})
    common = {names.ARTIFACT_PREPROCESS: data.settings_path, names.ARTIFACT_DECISION: decision}
    mlflow.set_tracking_uri(f"sqlite:///{work / 'mlflow.db'}")
    per_point: dict[str, Any] = {}
    for config in GRIDS["default"]:
        point = GridPoint.from_dict({**config, "max_epochs": SERVING_EPOCHS})
        log(f"serving: {point.name} ({point.architecture}), {SERVING_EPOCHS} epochs, then scoring ...")
        folder = work / point.name
        # What train registers today: the n-gram input with its title block.
        core, ngrams = brief_core(data, point, SERVING_EPOCHS)
        new_uri = _log_pyfunc({**common, **write_core(folder, data, point, core, ngrams)})
        # The legacy form has no title block: the same point's core without it, served both ways.
        if point.uses_ngrams:
            core, ngrams = brief_core(data, point, SERVING_EPOCHS, titles=False)
        same_uri = _log_pyfunc({**common, **write_core(folder / "no-title", data, point, core, ngrams)})
        legacy_uri = _log_pyfunc({**common, **write_legacy(folder, data, point, core, ngrams)})
        new_runs, _ = _scoring_seconds(new_uri, request, repeats, None)
        _, same_out = _scoring_seconds(same_uri, request, 1, None)
        # The legacy path takes ~20 s a run: warm it on a slice, time it once.
        legacy_runs, legacy_out = _scoring_seconds(legacy_uri, request, 1, 2000)
        new_s, legacy_s = statistics.median(new_runs), statistics.median(legacy_runs)
        per_point[point.name] = {
            "architecture": point.architecture,
            "reviews_per_second": round(len(request) / new_s),
            "legacy_reviews_per_second": round(len(request) / legacy_s),
            "speedup": round(legacy_s / new_s, 1),
            "seconds_runs": [round(t, 3) for t in new_runs],
            "legacy_seconds_runs": [round(t, 3) for t in legacy_runs],
            # The same core (no title block) through the new path and the legacy one.
            "max_abs_probability_difference": float(
                np.max(np.abs(same_out["probability"].to_numpy() - legacy_out["probability"].to_numpy()))
            ),
            "labels_differing": int((same_out["label"] != legacy_out["label"]).sum()),
        }
        log(f"serving: {point.name}: {per_point[point.name]}")
    mlflow.set_tracking_uri(None)
    slowest = min(per_point.values(), key=lambda d: d["reviews_per_second"])
    return {
        "serving_reviews_per_second": slowest["reviews_per_second"],
        "serving_legacy_reviews_per_second": min(d["legacy_reviews_per_second"] for d in per_point.values()),
        "serving_speedup": min(d["speedup"] for d in per_point.values()),
        "reviews": len(request),
        "per_architecture": per_point,
        "max_abs_probability_difference": max(
            d["max_abs_probability_difference"] for d in per_point.values()
        ),
        "method": (
            f"each default-grid point trained {SERVING_EPOCHS} epochs on the real train split (the DAG's "
            "preprocessing) and logged to a SQLite MLflow store as train logs models (core + features "
            "JSON, the n-gram title block included); for the legacy form (the Keras serving model with "
            "TextVectorization, which has no title block) the same point trained without the title "
            "block, logged both ways, their outputs compared; mlflow.pyfunc.load_model, one warm-up "
            f"predict (legacy: on 2,000 rows), then predict on every review with text: new path median "
            f"of {repeats}, legacy one run. Figures: the slowest architecture's new path, the slowest "
            "legacy path, the smallest per-architecture speedup"
        ),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    """The part with the command line's repetitions (at least 3)."""
    return measure(max(3, args.repeats // 2 + 1))


def describe(name: str, detail: dict[str, Any]) -> str:
    """The context of ``name`` in the report line, from this part's detail."""
    key = {"serving_reviews_per_second": "reviews_per_second", "serving_speedup": "speedup"}.get(
        name, "legacy_reviews_per_second"
    )
    per = ", ".join(f"{n} {v[key]:,}" for n, v in detail["per_architecture"].items())
    return f"{per}; max |p difference| {detail['max_abs_probability_difference']:.1e}"
