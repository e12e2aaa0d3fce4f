"""Part ``score``: the scoring stage on a million reviews (the real ones repeated, distinct ids)
in a process of its own (bench.stage_timer), with a quick champion: its time and peak memory."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from bench.common import BENCH_DIR, PY, ROOT, child_env, load_average, log, reviews_path, timed
from review_sentiment.config import CHAMPION_ALIAS, DEFAULT_SCORE_CHUNK_ROWS

SCORE_ROWS = 1_000_000
SCORE_EPOCHS = 2
MODEL_NAME = "bench-score-model"  # in a registry of the bench's own
FIGURES: dict[str, tuple[str, float, str]] = {
    "score_1m_seconds": ("<=", 120.0, "s"),
    "score_1m_peak_rss_mib": ("<=", 2048.0, "MiB"),
}


def score_grid_point() -> dict[str, Any]:
    """The champion's grid point: the default grid's TF-IDF MLP, trained briefly."""
    from review_sentiment.model import GRIDS

    mlp = next(point for point in GRIDS["default"] if point["architecture"] == "tfidf_mlp")
    return {**mlp, "name": "bench-mlp64", "max_epochs": SCORE_EPOCHS, "patience": 1}


def _score_champion(work: Path, tracking_uri: str) -> dict[str, Any]:
    """A quick champion in a fresh MLflow store: the real reviews, one brief TF-IDF MLP."""
    from mlflow import MlflowClient

    from review_sentiment import names
    from review_sentiment.cleaning_rules import PreprocessSettings
    from review_sentiment.ingest import ingest
    from review_sentiment.preprocess import preprocess
    from review_sentiment.tokenize import tokenize
    from review_sentiment.tracking import ensure_experiment, model_uri
    from review_sentiment.train import train
    from review_sentiment.versions import register_version

    snap = ingest(reviews_path(), work / "ingest")
    manifest = tokenize(preprocess(snap, work / "preprocess", PreprocessSettings()), work / "tokenize")
    experiment = ensure_experiment("bench-score", tracking_uri)
    point = score_grid_point()
    run_id = train(manifest, point, experiment_id=experiment, tracking_uri=tracking_uri)
    client = MlflowClient(tracking_uri, tracking_uri)
    threshold = client.get_run(run_id).data.metrics[names.METRIC_THRESHOLD]
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    version = str(register_version(model_uri(run_id, tracking_uri), MODEL_NAME, None).version)
    client.set_model_version_tag(MODEL_NAME, version, names.TAG_THRESHOLD, f"{threshold:.6f}")
    client.set_registered_model_alias(MODEL_NAME, CHAMPION_ALIAS, version)
    return {
        "run_id": run_id,
        "version": version,
        "threshold": round(threshold, 4),
        "grid_point": point,
    }


def measure(rows: int = SCORE_ROWS) -> dict[str, Any]:
    """The scoring stage on ``rows`` reviews (the real ones repeated, distinct ids) in a process of
    its own (bench.stage_timer): its time and peak RSS."""
    import hashlib

    from bench import scale_data

    source = reviews_path()
    digest = hashlib.sha256(source.read_bytes() + Path(scale_data.__file__).read_bytes()).hexdigest()[:16]
    data = BENCH_DIR / "data" / f"reviews_{rows}_{digest}.parquet"
    if not data.is_file():
        log(f"writing {rows:,} reviews to {data} ...")
        scale_data.write_repeated_parquet(source, data, rows)
    work = BENCH_DIR / "score"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    tracking_uri = f"sqlite:///{work / 'mlflow.db'}"
    log(f"training a quick champion (TF-IDF MLP, {SCORE_EPOCHS} epochs) ...")
    champion_seconds, champion = timed(lambda: _score_champion(work, tracking_uri))
    log(f"scoring {rows:,} reviews in a child process ...")
    env_extra = {
        "MLFLOW_TRACKING_URI": tracking_uri,
        "SENTIMENT_MODEL_NAME": MODEL_NAME,
        "SENTIMENT_ARTIFACT_ROOT": str(work / "artifacts"),
        "MLFLOW_CONFIGURE_LOGGING": "false",
    }
    timing = work / "score.timing.json"
    log_path = work / "score.log"
    cmd = [
        PY,
        "-m",
        "bench.stage_timer",
        str(timing),
        "score",
        "--source",
        str(data),
        "--output",
        str(work / "out"),
    ]
    load = load_average()
    with open(log_path, "w") as out:
        done = subprocess.run(
            cmd, stdout=out, stderr=subprocess.STDOUT, env=child_env(**env_extra), cwd=ROOT, check=False
        )
    inner = json.loads(timing.read_text()) if timing.is_file() else {}
    ok = done.returncode == 0
    import pyarrow.parquet as pq

    written = pq.ParquetFile(work / "out" / "predictions.parquet").metadata.num_rows if ok else None
    shutil.rmtree(work / "out", ignore_errors=True)  # 1M predictions: not kept
    return {
        "score_1m_seconds": round(inner["stage_seconds"], 1) if ok else None,
        "score_1m_peak_rss_mib": round(inner["peak_rss_kib"] / 1024) if "peak_rss_kib" in inner else None,
        "succeeded": ok,
        "exit_code": done.returncode,
        "rows_in_file": rows,
        "predictions_written": written,
        "wall_seconds": round(inner.get("wall_seconds", 0.0), 1),
        "import_seconds": round(inner.get("import_seconds", 0.0), 1),
        "summary": log_path.read_text().strip().splitlines()[-1]
        if log_path.is_file() and log_path.read_text().strip()
        else "",
        "champion": champion,
        "champion_training_seconds": round(champion_seconds, 1),
        "load_average_before_scoring": load,
        "method": (
            "python -m bench.stage_timer ... score (a stdlib launcher; its child imports pandas, "
            "pyarrow, keras, mlflow.pyfunc, then runs `python -m review_sentiment score` on a Parquet file "
            "of the real reviews repeated to 1M rows with distinct ids, Parquet target, "
            f"{DEFAULT_SCORE_CHUNK_ROWS:,}-row chunks). score_1m_seconds = the stage after the imports: "
            "resolving the champion, loading the pyfunc once, reading, scoring and writing every chunk; "
            "peak RSS = the child's ru_maxrss (os.wait4)."
        ),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    """The part with the command line's row count."""
    return measure(args.score_rows)


def describe(name: str, detail: dict[str, Any]) -> str:
    """The context of ``name`` in the report line, from this part's detail."""
    d = detail
    state = "succeeded" if d["succeeded"] else f"FAILED (exit {d['exit_code']})"
    load = d["load_average_before_scoring"]["1min"]
    return f"{state}; {d['predictions_written']} predictions; wall {d['wall_seconds']} s; load {load:.1f}"
