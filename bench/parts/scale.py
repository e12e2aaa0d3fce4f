"""Part ``scale``: ingest, preprocess and tokenize at 1x and 10x the real data, each stage a CLI
process of its own (bench.stage_timer): time ratios, peak memory, vocabulary growth."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from bench.common import BENCH_DIR, PY, ROOT, child_env, log, scaled_csv

STAGES = ("ingest", "preprocess", "tokenize")
FIGURES: dict[str, tuple[str, float, str]] = {
    "scale10_time_ratio": ("<=", 11.0, "x"),
    "scale10_peak_rss_mib": ("<=", 2048.0, "MiB"),
}


def _run_stage(stage: str, args: list[str], workdir: Path) -> dict[str, Any]:
    """Run a CLI stage in its own process (see bench.stage_timer): times and peak RSS."""
    timing = workdir / f"{stage}.timing.json"
    log_path = workdir / f"{stage}.log"
    cmd = [PY, "-m", "bench.stage_timer", str(timing), stage, *args]
    with open(log_path, "w") as out:
        done = subprocess.run(
            cmd, stdout=out, stderr=subprocess.STDOUT, env=child_env(), cwd=ROOT, check=False
        )
    if done.returncode != 0:
        raise RuntimeError(f"{stage} failed ({done.returncode}); see {log_path}")
    inner = json.loads(timing.read_text())
    return {
        "wall_seconds": round(inner["wall_seconds"], 2),
        "stage_seconds": round(inner["stage_seconds"], 2),
        "import_seconds": round(inner["import_seconds"], 2),
        "peak_rss_mib": round(inner["peak_rss_kib"] / 1024),
        "output": log_path.read_text().strip().splitlines()[-1],
    }


def _vocabulary_growth(clean_1x: Path, clean_10x: Path) -> dict[str, Any]:
    """Distinct cleaned words at 1x and 10x, and what Heaps' law fitted on the real data predicts."""
    import numpy as np
    import pandas as pd

    from review_sentiment.preprocess import CLEAN

    real = pd.read_parquet(clean_1x, columns=[CLEAN])[CLEAN].sample(frac=1.0, random_state=0).tolist()
    sizes, vocab = [], []
    for share in (1 / 16, 1 / 8, 1 / 4, 1 / 2, 1):
        n = int(len(real) * share)
        sizes.append(n)
        vocab.append(len({w for t in real[:n] for w in t.split()}))
    beta = float(np.polyfit(np.log(sizes), np.log(vocab), 1)[0])
    scaled = pd.read_parquet(clean_10x, columns=[CLEAN])[CLEAN]
    vocab_10x = len({w for t in scaled for w in t.split()})
    return {
        "distinct_words_1x": vocab[-1],
        "distinct_words_10x": vocab_10x,
        "heaps_beta_on_real_data": round(beta, 3),
        "heaps_prediction_10x": round(vocab[-1] * (len(scaled) / len(real)) ** beta),
        "distinct_clean_texts_1x": len(set(real)),
        "distinct_clean_texts_10x": int(scaled.nunique()),
    }


def measure() -> dict[str, Any]:
    """ingest, preprocess and tokenize at 1x and 10x, each a separate CLI process."""
    runs: dict[str, dict[str, Any]] = {}
    data: dict[str, Any] = {}
    for factor in (1, 10):
        source, meta = scaled_csv(factor)
        data[f"x{factor}"] = {
            "file": str(source.relative_to(ROOT) if source.is_relative_to(ROOT) else source)
        }
        data[f"x{factor}"].update({k: v for k, v in meta.items() if v is not None})
        work = BENCH_DIR / "scale" / f"x{factor}"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        log(f"stages at {factor}x, one process each ...")
        runs[f"x{factor}"] = {
            "ingest": _run_stage("ingest", ["--source", str(source), "--output", str(work / "ingest")], work),
            "preprocess": _run_stage(
                "preprocess",
                ["--input", str(work / "ingest" / "reviews.parquet"), "--output", str(work / "preprocess")],
                work,
            ),
            "tokenize": _run_stage(
                "tokenize",
                [
                    "--input",
                    str(work / "preprocess" / "reviews_clean.parquet"),
                    "--output",
                    str(work / "tokenize"),
                ],
                work,
            ),
        }
        manifest = json.loads((work / "tokenize" / "manifest.json").read_text())
        data[f"x{factor}"]["rows_after_ingest"] = manifest["rows_in"]
        data[f"x{factor}"]["rows_after_dedup"] = manifest["rows_in"] - manifest["duplicates_or_empty_dropped"]
    ratios = {
        stage: {
            "stage_seconds": round(
                runs["x10"][stage]["stage_seconds"] / runs["x1"][stage]["stage_seconds"], 2
            ),
            "wall_seconds": round(runs["x10"][stage]["wall_seconds"] / runs["x1"][stage]["wall_seconds"], 2),
        }
        for stage in STAGES
    }
    total = {
        key: round(
            sum(runs["x10"][s][key] for s in STAGES) / sum(runs["x1"][s][key] for s in STAGES),
            2,
        )
        for key in ("stage_seconds", "wall_seconds")
    }
    work = BENCH_DIR / "scale"
    return {
        "scale10_time_ratio": max(r["stage_seconds"] for r in ratios.values()),
        "scale10_peak_rss_mib": max(runs["x10"][s]["peak_rss_mib"] for s in STAGES),
        "ratio_10x_over_1x": ratios,
        "ratio_10x_over_1x_all_three": total,
        "runs": runs,
        "data": data,
        "vocabulary": _vocabulary_growth(
            work / "x1" / "preprocess" / "reviews_clean.parquet",
            work / "x10" / "preprocess" / "reviews_clean.parquet",
        ),
        "method": (
            "each stage a separate process started by python -m bench.stage_timer (a small "
            "stdlib-only launcher): the process imports the stage's libraries, then runs the CLI's "
            "main (as python -m review_sentiment <stage>). stage_seconds = main() only (imports "
            "excluded: the stricter ratio, since start-up does not grow with data); wall_seconds = "
            "the whole process. Peak RSS = ru_maxrss of that process from os.wait4 in the launcher. "
            "scale10_time_ratio = the largest per-stage stage_seconds ratio."
        ),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    """The part (no options)."""
    return measure()


def describe(name: str, detail: dict[str, Any]) -> str:
    """The context of ``name`` in the report line, from this part's detail."""
    if name == "scale10_time_ratio":
        per = ", ".join(f"{s} {detail['ratio_10x_over_1x'][s]['stage_seconds']}x" for s in STAGES)
        walls = detail["ratio_10x_over_1x_all_three"]["wall_seconds"]
        return f"stage time {per}; whole processes {walls}x"
    return ", ".join(f"{s} {detail['runs']['x10'][s]['peak_rss_mib']} MiB" for s in STAGES) + " at 10x"
