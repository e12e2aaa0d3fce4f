"""`make bench`: the speed-and-scale figures, measured on this machine.

    .venv/bin/python -m bench.run_bench [--parts parse,preprocess,scale,incremental,full,serving,score]

Prints one line per figure and writes them, with their details, to bench/results.json. Parts
not run keep their previous figures there (each part records when it was measured). Data and
scratch files go to .local/bench/ (never committed: the review data set is third-party).
Progress goes to stderr; the figures to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = ROOT / ".local" / "bench"
RESULTS_PATH = ROOT / "bench" / "results.json"
PY = sys.executable
PARTS = ("parse", "preprocess", "scale", "incremental", "full", "serving", "score")
SCORE_ROWS = 1_000_000
# The champion the score part scores with: the default grid's TF-IDF MLP, trained briefly.
SCORE_GRID_POINT = {"name": "bench-mlp64", "architecture": "tfidf_mlp", "dense_units": 64, "dropout": 0.5,
                    "max_epochs": 2, "patience": 1}  # fmt: skip
STAGES = ("ingest", "preprocess", "tokenize")
HEAVY_MODULES = ("tensorflow", "keras", "pandas", "mlflow", "sklearn")
NEW_SHARE = 0.05  # the incremental week: this share of the reviews is new

# figure -> (comparison, bound, unit); "x" figures are ratios.
TARGETS: dict[str, tuple[str, float, str]] = {
    "preprocess_speedup_vs_seed": (">=", 1000.0, "x"),
    "full_run_seconds": ("<=", 120.0, "s"),
    "full_run_default_grid_seconds": ("<=", 300.0, "s"),
    "scale10_time_ratio": ("<=", 11.0, "x"),
    "scale10_peak_rss_mib": ("<=", 2048.0, "MiB"),
    "incremental_time_fraction": ("<=", 0.10, ""),
    "dag_parse_seconds": ("<", 0.5, "s"),
    "serving_reviews_per_second": (">=", 10000.0, "/s"),
    "serving_legacy_reviews_per_second": (">=", 0.0, "/s"),  # today's path, for the ratio
    "serving_speedup": (">=", 10.0, "x"),
    "score_1m_seconds": ("<=", 120.0, "s"),
    "score_1m_peak_rss_mib": ("<=", 2048.0, "MiB"),
}
SERVING_EPOCHS = 2  # enough for a core that is not constant; scoring time does not depend on it


def _log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _load() -> dict[str, float]:
    one, five, fifteen = os.getloadavg()
    return {"1min": one, "5min": five, "15min": fifteen}


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(ROOT), str(ROOT / "include"), env.get("PYTHONPATH")])
    )
    env.update(extra)
    return env


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    cpu = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        found = re.search(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), re.MULTILINE)
        cpu = found.group(1).strip() if found else cpu
    mem_kib = 0
    meminfo = Path("/proc/meminfo")
    if meminfo.is_file():
        found = re.search(r"^MemTotal:\s*(\d+) kB", meminfo.read_text(), re.MULTILINE)
        mem_kib = int(found.group(1)) if found else 0
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu,
        "memory_gib": round(mem_kib / 2**20, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


# --- Data -------------------------------------------------------------------------------------


def reviews_path() -> Path:
    from review_sentiment.config import Settings

    path = Settings.from_env().reviews_path
    if not path.is_file():
        sys.exit(f"the real review file is missing: {path} (set REVIEWS_PATH); the benchmark needs it")
    return path


def scaled_csv(factor: int) -> tuple[Path, dict[str, Any]]:
    """The ``factor``-times data file, generated once per source file and generator version."""
    import hashlib

    from bench import scale_data

    source = reviews_path()
    if factor == 1:
        return source, {"rows_in_file": None, "generated": False}
    digest = hashlib.sha256(source.read_bytes() + Path(scale_data.__file__).read_bytes()).hexdigest()[:16]
    out = BENCH_DIR / "data" / f"reviews_x{factor}_{digest}.csv.gz"
    meta_path = out.with_suffix(".json")
    if out.is_file() and meta_path.is_file():
        return out, {**json.loads(meta_path.read_text()), "generated": False}
    for stale in out.parent.glob(f"reviews_x{factor}_*"):  # from an older generator or source
        stale.unlink()
    _log(f"generating {factor}x data into {out.parent} ...")
    seconds, (rows, repeats) = _timed(lambda: scale_data.write_scaled_csv(source, out, factor))
    meta = {"rows_in_file": rows, "texts_still_repeated": repeats, "typo_rate": scale_data.DEFAULT_TYPO_RATE}
    meta_path.write_text(json.dumps(meta) + "\n")
    return out, {**meta, "generated": True, "generation_seconds": round(seconds, 1)}


_SNAPSHOTS: dict[int, Path] = {}


def snapshot(factor: int) -> Path:
    """Ingest's Parquet snapshot of the ``factor``-times data, made once per benchmark run."""
    from review_sentiment.ingest import ingest

    if factor not in _SNAPSHOTS:
        source, _ = scaled_csv(factor)
        _SNAPSHOTS[factor] = ingest(source, BENCH_DIR / "snapshots" / f"x{factor}")
    return _SNAPSHOTS[factor]


# --- Part: DAG parse --------------------------------------------------------------------------

_PARSE_CODE = """
import json, sys, time
import airflow.sdk
sys.path.insert(0, sys.argv[1])
start = time.perf_counter()
import sentiment_retrain
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "heavy": [m for m in sys.argv[2:] if m in sys.modules]}))
"""


def part_parse(repeats: int) -> dict[str, Any]:
    """Import the DAG module in fresh processes, after ``airflow.sdk``; no heavy library."""
    home = BENCH_DIR / "parse-airflow-home"
    home.mkdir(parents=True, exist_ok=True)
    env = _env(AIRFLOW_HOME=str(home), AIRFLOW__CORE__LOAD_EXAMPLES="False")
    seconds, heavy = [], set()
    for _ in range(repeats):
        done = subprocess.run(
            [PY, "-c", _PARSE_CODE, str(ROOT / "dags"), *HEAVY_MODULES],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        result = json.loads(done.stdout.strip().splitlines()[-1])
        seconds.append(result["seconds"])
        heavy.update(result["heavy"])
    return {
        "dag_parse_seconds": statistics.median(seconds),
        "runs_seconds": [round(s, 4) for s in seconds],
        "heavy_modules_imported": sorted(heavy),
        "tensorflow_imported": "tensorflow" in heavy,
        "method": "fresh process per run: import airflow.sdk, then time `import sentiment_retrain`; median",
    }


# --- Part: preprocess throughput against the notebook's loop --------------------------------------


def part_preprocess(seed_rows: int, repeats: int) -> dict[str, Any]:
    """The original notebook's loop and the project's cleaning side by side, plus their agreement."""
    import numpy as np
    import pandas as pd

    from bench.seed_baseline import FIXED_PATTERN, SEED_PATTERN, seed_clean
    from review_sentiment import schema
    from review_sentiment.preprocess import PreprocessSettings, TextCleaner, clean_frame

    frame = pd.read_parquet(snapshot(1))
    texts = frame[schema.TEXT].tolist()
    picks = np.sort(np.random.default_rng(0).choice(len(texts), size=seed_rows, replace=False))
    sample = [texts[i] for i in picks]

    _log(f"seed loop on {seed_rows} reviews (about {seed_rows / 44:.0f} s) ...")
    seed_seconds, seed_out = _timed(lambda: seed_clean(sample, SEED_PATTERN))
    _log("notebook loop again with the regex fixed, for the agreement check ...")
    fixed_out = seed_clean(sample, FIXED_PATTERN)
    project = TextCleaner(PreprocessSettings.notebook(unescape_html=False)).clean_many(sample)
    disagree = [i for i, (a, b) in enumerate(zip(project, fixed_out, strict=True)) if a != b]
    changed_by_bug = sum(a != b for a, b in zip(seed_out, fixed_out, strict=True))

    settings = PreprocessSettings()  # what the pipeline runs: the package's defaults
    rates: dict[str, dict[str, Any]] = {}
    for factor in (1, 10):
        data = frame if factor == 1 else pd.read_parquet(snapshot(factor))
        _log(f"project preprocess on {factor}x ({len(data)} reviews), {repeats} cold runs ...")
        runs = [_timed(lambda d=data: clean_frame(d, settings))[0] for _ in range(repeats)]
        rates[f"x{factor}"] = {
            "rows": len(data),
            "seconds_median": round(statistics.median(runs), 4),
            "rows_per_second": round(len(data) / statistics.median(runs)),
        }
        del data
    seed_rate = seed_rows / seed_seconds
    return {
        "preprocess_speedup_vs_seed": rates["x1"]["rows_per_second"] / seed_rate,
        "speedup_vs_seed_at_10x": rates["x10"]["rows_per_second"] / seed_rate,
        "seed_loop": {
            "rows": seed_rows,
            "seconds": round(seed_seconds, 2),
            "rows_per_second": round(seed_rate, 2),
            "sample": "seeded random sample (numpy default_rng(0)) of the ingested real reviews",
        },
        "project": rates,
        "project_method": (
            "clean_frame (a fresh TextCleaner, so a cold stem memo, each run) in this process, "
            "default PreprocessSettings; median of the runs"
        ),
        "agreement": {
            "rows_compared": seed_rows,
            "rows_differing": len(disagree),
            "first_differences": [
                {"text": sample[i][:200], "seed_fixed": fixed_out[i], "project": project[i]}
                for i in disagree[:3]
            ],
            "rows_changed_by_seed_regex_bug": changed_by_bug,
            "method": (
                "TextCleaner(PreprocessSettings.notebook(unescape_html=False)) against the notebook loop "
                "rerun "
                f"with {FIXED_PATTERN} instead of {SEED_PATTERN}, on the same rows"
            ),
        },
    }


# --- Part: 10x scale, one process per stage ---------------------------------------------------


def _run_stage(stage: str, args: list[str], workdir: Path) -> dict[str, Any]:
    """Run a CLI stage in its own process (see bench.stage_timer): times and peak RSS."""
    timing = workdir / f"{stage}.timing.json"
    log = workdir / f"{stage}.log"
    cmd = [PY, "-m", "bench.stage_timer", str(timing), stage, *args]
    with open(log, "w") as out:
        done = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=_env(), cwd=ROOT, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{stage} failed ({done.returncode}); see {log}")
    inner = json.loads(timing.read_text())
    return {
        "wall_seconds": round(inner["wall_seconds"], 2),
        "stage_seconds": round(inner["stage_seconds"], 2),
        "import_seconds": round(inner["import_seconds"], 2),
        "peak_rss_mib": round(inner["peak_rss_kib"] / 1024),
        "output": log.read_text().strip().splitlines()[-1],
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


def part_scale() -> dict[str, Any]:
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
        _log(f"stages at {factor}x, one process each ...")
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


# --- Part: incremental week -------------------------------------------------------------------


def _incremental(factor: int, repeats: int) -> dict[str, Any]:
    """Last week (5% of the reviews missing) fills the cache; this week runs on all of them."""
    import numpy as np
    import pandas as pd

    from review_sentiment.layout import OUTPUT_NAME, SETTINGS_NAME
    from review_sentiment.preprocess import (
        PreprocessCache,
        PreprocessSettings,
        TextCleaner,
        clean_frame,
        cleaner_input_array,
        preprocess,
    )

    settings = PreprocessSettings()
    this_week = snapshot(factor)
    work = BENCH_DIR / "incremental" / f"x{factor}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    frame = pd.read_parquet(this_week)
    new = np.random.default_rng(1).choice(len(frame), size=round(NEW_SHARE * len(frame)), replace=False)
    last_week = work / "last_week.parquet"
    frame.drop(index=frame.index[new]).to_parquet(last_week, index=False)

    preprocess(last_week, work / "warm-up", settings)  # imports and disk cache, not timed
    week1_cache = work / "cache-after-last-week"
    cold_with_cache, _ = _timed(lambda: preprocess(last_week, work / "last-week", settings, week1_cache))

    def fresh_cache(tag: str) -> Path:
        copy = work / f"cache-{tag}"
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(week1_cache, copy)  # not timed: each run starts from last week's cache
        return copy

    stage = {"cold": [], "warm": []}
    cleaning = {"cold": [], "warm": []}
    hits = misses = 0
    for i in range(repeats):  # interleaved, so load changes on the machine hit both alike
        stage["cold"].append(_timed(lambda: preprocess(this_week, work / "cold", settings))[0])
        cache_dir = fresh_cache(f"stage-{i}")
        stage["warm"].append(_timed(lambda d=cache_dir: preprocess(this_week, work / "warm", settings, d))[0])
        cleaning["cold"].append(_timed(lambda: clean_frame(frame, settings))[0])
        cache_dir = fresh_cache(f"clean-{i}")
        start = time.perf_counter()
        # Like clean_frame: from the in-memory frame to the cleaned texts of every row.
        cache = PreprocessCache(cache_dir, TextCleaner(settings))
        cache.clean(cleaner_input_array(frame, settings))
        cleaning["warm"].append(time.perf_counter() - start)
        hits, misses = cache.hits, cache.misses

    cold_out, warm_out = work / "cold" / OUTPUT_NAME, work / "warm" / OUTPUT_NAME
    identical = pd.read_parquet(cold_out).equals(pd.read_parquet(warm_out)) and (
        (work / "cold" / SETTINGS_NAME).read_bytes() == (work / "warm" / SETTINGS_NAME).read_bytes()
    )
    changed = PreprocessCache(
        fresh_cache("settings-change"), TextCleaner(PreprocessSettings.notebook(keep_negations=True))
    )
    changed.clean(cleaner_input_array(frame, PreprocessSettings.notebook(keep_negations=True)))

    def summary(runs: dict[str, list[float]]) -> dict[str, Any]:
        cold, warm = statistics.median(runs["cold"]), statistics.median(runs["warm"])
        return {
            "cold_seconds": round(cold, 4),
            "warm_seconds": round(warm, 4),
            "fraction": round(warm / cold, 4),
            "fraction_of_fastest_runs": round(min(runs["warm"]) / min(runs["cold"]), 4),
            "runs_seconds": {k: [round(t, 4) for t in v] for k, v in runs.items()},
        }

    return {
        "reviews": len(frame),
        "new_reviews": len(new),
        "cache_hits": hits,
        "cleaned": misses,
        "output_identical_to_cold_run": bool(identical),
        "output_files_byte_identical": cold_out.read_bytes() == warm_out.read_bytes(),
        "hits_after_keep_negations_change": changed.hits,
        "cleaning_only": summary(cleaning),
        "whole_stage": summary(stage),
        "last_week_cold_run_filling_the_cache_seconds": round(cold_with_cache, 4),
        "cache_files_mib": round(
            sum(p.stat().st_size for p in week1_cache.rglob("*") if p.is_file()) / 2**20, 2
        ),
    }


def part_incremental(repeats: int) -> dict[str, Any]:
    """The incremental week at 1x (the figure) and at 10x (detail)."""
    _log(f"incremental week at 1x, {repeats} interleaved cold/warm runs ...")
    at_1x = _incremental(1, repeats)
    _log("incremental week at 10x ...")
    at_10x = _incremental(10, max(1, repeats // 2))
    return {
        "incremental_time_fraction": at_1x["cleaning_only"]["fraction"],
        "incremental_time_fraction_is": (
            "cleaning only at 1x: median time of this week's cleaning with last week's cache (a "
            "fresh TextCleaner, cache load, the cleaner inputs from the frame, look-up of every "
            "review, cleaning the new 5%, the output list) over the median time of cleaning every "
            "review with no cache (clean_frame, from the same frame to the same list). The whole "
            "stage, Parquet I/O and the cache write included, is whole_stage.fraction."
        ),
        "x1": at_1x,
        "x10": at_10x,
        "method": (
            f"last week = the ingested snapshot minus a seeded random {NEW_SHARE:.0%}; its run "
            "fills the cache; each warm run starts from a copy of that cache (copy not timed); "
            "cold = the same stage with no cache; runs interleaved, medians; in this process"
        ),
    }


# --- Part: the whole DAG ----------------------------------------------------------------------


def _task_durations(airflow_db: Path) -> dict[str, Any]:
    """Per-task durations and states from the run's Airflow metadata DB."""
    try:
        with sqlite3.connect(airflow_db) as db:
            rows = db.execute(
                "SELECT task_id, map_index, state, start_date, end_date FROM task_instance "
                "ORDER BY start_date"
            ).fetchall()
    except sqlite3.Error as exc:
        return {"error": str(exc)}
    tasks = {}
    for task_id, map_index, state, start, end in rows:
        name = task_id if map_index < 0 else f"{task_id}[{map_index}]"
        seconds = None
        if start and end:
            seconds = round((datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds(), 1)
        tasks[name] = {"state": state, "seconds": seconds}
    return tasks


def _full_run(name: str, conf: dict[str, Any] | None) -> dict[str, Any]:
    """scripts/run_local.sh (what `make run` does) with fresh Airflow, MLflow and artifact stores."""
    home = BENCH_DIR / "full" / name
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    mlflow_dir = Path(tempfile.mkdtemp(prefix=f"bench-mlflow-{name}-"))
    env = _env(
        AIRFLOW_HOME=str(home / "airflow"),
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home / 'airflow' / 'airflow.db'}",
        MLFLOW_TRACKING_URI=f"sqlite:///{mlflow_dir / 'mlflow.db'}",
        SENTIMENT_ARTIFACT_ROOT=str(home / "artifacts"),
    )
    cmd = [str(ROOT / "scripts" / "run_local.sh")]
    if conf is not None:
        cmd += ["-c", json.dumps(conf)]
    log = home / "run.log"
    _log(f"full run '{name}' (log: {log.relative_to(ROOT)}) ...")
    load_before = _load()
    try:
        with open(log, "w") as out:
            seconds, done = _timed(
                lambda: subprocess.run(
                    cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT, check=False
                )
            )
    finally:
        shutil.rmtree(mlflow_dir, ignore_errors=True)
    text = log.read_text()
    dag_seconds = re.findall(r"DAG run finished in (\d+) s", text)
    tasks = _task_durations(home / "airflow" / "airflow.db")
    # The weekly outcome is a branch: the branches not taken end "skipped", not failed.
    ok = done.returncode == 0 and all(
        t.get("state") in ("success", "skipped") for t in tasks.values() if isinstance(t, dict)
    )
    return {
        "wall_seconds": round(seconds, 1),
        "succeeded": ok,
        "exit_code": done.returncode,
        "dag_run_seconds_reported": int(dag_seconds[-1]) if dag_seconds else None,
        "tasks": tasks,
        "champion": [line for line in text.splitlines() if line.startswith(("champion:", "test metrics:"))],
        "conf": conf,
        "load_average_before": load_before,
    }


def part_full() -> dict[str, Any]:
    """The whole DAG on the full data, as `make run` runs it: classic grid, then default params."""
    from review_sentiment.model import GRIDS

    # The original notebook's run reproduced: its grid and preprocessing (stopwords dropped, no title or
    # negations); its models cannot beat the baseline, which is trained and recorded anyway.
    seed_conf = {
        "grid": [dict(p) for p in GRIDS["classic"]],
        "remove_stopwords": True,
        "keep_negations": False,
        "use_title": False,
        "beat_baseline": False,
    }
    seed = _full_run("classic-grid", seed_conf)
    default = _full_run("default-params", None)
    return {
        "full_run_seconds": seed["wall_seconds"] if seed["succeeded"] else None,
        "full_run_default_grid_seconds": default["wall_seconds"] if default["succeeded"] else None,
        "seed_grid": seed,
        "default_grid": default,
        "default_grid_points": [p["name"] for p in GRIDS["default"]],
        "method": (
            "wall clock of scripts/run_local.sh (airflow db migrate + airflow dags test "
            "sentiment_retrain + printing the champion), each with a fresh AIRFLOW_HOME, a fresh "
            "SQLite MLflow store in a temp dir and a fresh SENTIMENT_ARTIFACT_ROOT (so the "
            "preprocess cache starts empty); the classic run passes the classic grid and preprocessing as "
            "conf, the default run no conf"
        ),
    }


# --- Part: the registered model's scoring speed ---------------------------------------------------


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
        seconds, out = _timed(lambda: model.predict(request))
        runs.append(seconds)
    return runs, out


def part_serving(repeats: int) -> dict[str, Any]:
    """``load_model(...).predict`` on every real review with text, new path vs legacy, per
    default-grid architecture, on the same briefly trained core."""
    import mlflow
    import numpy as np
    import pandas as pd

    from bench.cores import brief_core, write_core, write_legacy
    from review_sentiment import names
    from review_sentiment.artifacts import write_json
    from review_sentiment.model import GRIDS, GridPoint
    from review_sentiment.preprocess import PreprocessSettings, preprocess
    from review_sentiment.scoring import model_request
    from review_sentiment.tokenize import Tokenized, tokenize

    work = BENCH_DIR / "serving"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    settings = PreprocessSettings()
    source = snapshot(1)
    data = Tokenized(tokenize(preprocess(source, work / "preprocess", settings), work / "tokenize"))
    frame = pd.read_parquet(source)
    request = model_request(frame[frame["review_text"].fillna("").str.strip() != ""])
    decision = write_json(work / "decision.json", {names.DECISION_THRESHOLD_KEY: 0.5})
    common = {names.ARTIFACT_PREPROCESS: data.settings_path, names.ARTIFACT_DECISION: decision}
    mlflow.set_tracking_uri(f"sqlite:///{work / 'mlflow.db'}")
    per_point: dict[str, Any] = {}
    for config in GRIDS["default"]:
        point = GridPoint.from_dict({**config, "max_epochs": SERVING_EPOCHS})
        _log(f"serving: {point.name} ({point.architecture}), {SERVING_EPOCHS} epochs, then scoring ...")
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
        _log(f"serving: {point.name}: {per_point[point.name]}")
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


# --- Part: batch scoring of one million reviews ---------------------------------------------


def _score_champion(work: Path, tracking_uri: str) -> dict[str, Any]:
    """A quick champion in a fresh MLflow store: the real reviews, one brief TF-IDF MLP."""
    from mlflow import MlflowClient

    from review_sentiment import names
    from review_sentiment.ingest import ingest
    from review_sentiment.preprocess import PreprocessSettings, preprocess
    from review_sentiment.tokenize import tokenize
    from review_sentiment.tracking import ensure_experiment, model_uri
    from review_sentiment.train import train
    from review_sentiment.versions import register_version

    snap = ingest(reviews_path(), work / "ingest")
    manifest = tokenize(preprocess(snap, work / "preprocess", PreprocessSettings()), work / "tokenize")
    experiment = ensure_experiment("bench-score", tracking_uri)
    run_id = train(manifest, SCORE_GRID_POINT, experiment_id=experiment, tracking_uri=tracking_uri)
    client = MlflowClient(tracking_uri, tracking_uri)
    threshold = client.get_run(run_id).data.metrics[names.METRIC_THRESHOLD]
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    version = str(register_version(model_uri(run_id, tracking_uri), "bench-score-model", None).version)
    client.set_model_version_tag("bench-score-model", version, names.TAG_THRESHOLD, f"{threshold:.6f}")
    client.set_registered_model_alias("bench-score-model", "champion", version)
    return {
        "run_id": run_id,
        "version": version,
        "threshold": round(threshold, 4),
        "grid_point": SCORE_GRID_POINT,
    }


def part_score(rows: int = SCORE_ROWS) -> dict[str, Any]:
    """The scoring stage on ``rows`` reviews (the real ones repeated, distinct ids) in a process of
    its own (bench.stage_timer): its time and peak RSS."""
    import hashlib

    from bench import scale_data

    source = reviews_path()
    digest = hashlib.sha256(source.read_bytes() + Path(scale_data.__file__).read_bytes()).hexdigest()[:16]
    data = BENCH_DIR / "data" / f"reviews_{rows}_{digest}.parquet"
    if not data.is_file():
        _log(f"writing {rows:,} reviews to {data} ...")
        scale_data.write_repeated_parquet(source, data, rows)
    work = BENCH_DIR / "score"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    tracking_uri = f"sqlite:///{work / 'mlflow.db'}"
    _log("training a quick champion (TF-IDF MLP, 2 epochs) ...")
    champion_seconds, champion = _timed(lambda: _score_champion(work, tracking_uri))
    _log(f"scoring {rows:,} reviews in a child process ...")
    env_extra = {
        "MLFLOW_TRACKING_URI": tracking_uri,
        "SENTIMENT_MODEL_NAME": "bench-score-model",
        "SENTIMENT_ARTIFACT_ROOT": str(work / "artifacts"),
        "MLFLOW_CONFIGURE_LOGGING": "false",
    }
    timing = work / "score.timing.json"
    log = work / "score.log"
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
    load = _load()
    with open(log, "w") as out:
        done = subprocess.run(
            cmd, stdout=out, stderr=subprocess.STDOUT, env=_env(**env_extra), cwd=ROOT, check=False
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
        "summary": log.read_text().strip().splitlines()[-1]
        if log.is_file() and log.read_text().strip()
        else "",
        "champion": champion,
        "champion_training_seconds": round(champion_seconds, 1),
        "load_average_before_scoring": load,
        "method": (
            "python -m bench.stage_timer ... score (a stdlib launcher; its child imports pandas, "
            "pyarrow, keras, mlflow.pyfunc, then runs `python -m review_sentiment score` on a Parquet file "
            "of the real reviews repeated to 1M rows with distinct ids, Parquet target, 50,000-row "
            "chunks). score_1m_seconds = the stage after the imports: resolving the champion, loading "
            "the pyfunc once, reading, scoring and writing every chunk; peak RSS = the child's ru_maxrss "
            "(os.wait4)."
        ),
    }


# --- Report -----------------------------------------------------------------------------------


def _met(name: str, value: float | None) -> bool | None:
    if value is None:
        return None
    op, bound, _ = TARGETS[name]
    return {"<=": value <= bound, ">=": value >= bound, "<": value < bound}[op]


def _show(name: str, value: float | None) -> str:
    if value is None:
        return "n/a"
    unit = TARGETS[name][2]
    if name == "incremental_time_fraction":
        return f"{value:.1%}"
    if unit == "x":
        return f"{value:,.1f}x" if value < 100 else f"{value:,.0f}x"
    return f"{value:,.2f} {unit}" if value < 10 else f"{value:,.0f} {unit}"


def _context(name: str, detail: dict[str, Any]) -> str:
    part = {
        "preprocess_speedup_vs_seed": "preprocess",
        "full_run_seconds": "full",
        "full_run_default_grid_seconds": "full",
        "scale10_time_ratio": "scale",
        "scale10_peak_rss_mib": "scale",
        "incremental_time_fraction": "incremental",
        "dag_parse_seconds": "parse",
        "serving_reviews_per_second": "serving",
        "serving_legacy_reviews_per_second": "serving",
        "serving_speedup": "serving",
        "score_1m_seconds": "score",
        "score_1m_peak_rss_mib": "score",
    }[name]
    d = detail.get(part)
    if not d:
        return "not measured"
    if name == "preprocess_speedup_vs_seed":
        x1, x10, seed, agree = d["project"]["x1"], d["project"]["x10"], d["seed_loop"], d["agreement"]
        return (
            f"project {x1['rows_per_second']:,} rows/s on {x1['rows']:,} reviews, "
            f"{x10['rows_per_second']:,} rows/s on {x10['rows']:,} ({d['speedup_vs_seed_at_10x']:,.0f}x); "
            f"notebook loop {seed['rows_per_second']} rows/s on {seed['rows']:,}; "
            f"{agree['rows_differing']} of {agree['rows_compared']:,} rows differ from the notebook "
            "(regex fixed)"
        )
    if name in ("full_run_seconds", "full_run_default_grid_seconds"):
        run = d["seed_grid" if name == "full_run_seconds" else "default_grid"]
        state = "succeeded" if run["succeeded"] else f"FAILED (exit {run['exit_code']})"
        load = run["load_average_before"]["1min"]
        return f"{state}; DAG run {run['dag_run_seconds_reported']} s of it; load average {load:.1f}"
    if name == "scale10_time_ratio":
        per = ", ".join(f"{s} {d['ratio_10x_over_1x'][s]['stage_seconds']}x" for s in STAGES)
        walls = d["ratio_10x_over_1x_all_three"]["wall_seconds"]
        return f"stage time {per}; whole processes {walls}x"
    if name == "scale10_peak_rss_mib":
        return ", ".join(f"{s} {d['runs']['x10'][s]['peak_rss_mib']} MiB" for s in STAGES) + " at 10x"
    if name in ("score_1m_seconds", "score_1m_peak_rss_mib"):
        state = "succeeded" if d["succeeded"] else f"FAILED (exit {d['exit_code']})"
        load = d["load_average_before_scoring"]["1min"]
        return f"{state}; {d['predictions_written']} predictions; wall {d['wall_seconds']} s; load {load:.1f}"
    if name == "incremental_time_fraction":
        x1 = d["x1"]
        return (
            f"cleaning only; whole stage {x1['whole_stage']['fraction']:.1%}; "
            f"{x1['cleaned']:,} of {x1['reviews']:,} cleaned; "
            f"identical output: {x1['output_identical_to_cold_run']}"
        )
    if name.startswith("serving_"):
        key = {"serving_reviews_per_second": "reviews_per_second", "serving_speedup": "speedup"}.get(
            name, "legacy_reviews_per_second"
        )
        per = ", ".join(f"{n} {v[key]:,}" for n, v in d["per_architecture"].items())
        return f"{per}; max |p difference| {d['max_abs_probability_difference']:.1e}"
    return (
        f"median of {len(d['runs_seconds'])}; heavy modules imported: {d['heavy_modules_imported'] or 'none'}"
    )


def report(results: dict[str, Any]) -> list[str]:
    """One line per figure: value, target, met or not, and what it is."""
    lines = []
    for name, (op, bound, _) in TARGETS.items():
        value = results.get(name)
        met = _met(name, value)
        verdict = {True: "MET", False: "NOT MET", None: "-"}[met]
        target = f"{op} {_show(name, bound)}"
        lines.append(
            f"{name:<31} {_show(name, value):>10}  target {target:<10} {verdict:<8} "
            f"{_context(name, results.get('detail', {}))}"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--parts", default=",".join(PARTS), help=f"comma-separated subset of {','.join(PARTS)}"
    )
    parser.add_argument("--seed-rows", type=int, default=2000, help="reviews for the seed loop (>= 2000)")
    parser.add_argument("--repeats", type=int, default=5, help="repetitions of the short in-process timings")
    parser.add_argument("--score-rows", type=int, default=SCORE_ROWS, help="reviews for the score part")
    args = parser.parse_args(argv)
    parts = [p for p in args.parts.split(",") if p]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        parser.error(f"unknown parts {unknown}; choose from {PARTS}")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    BENCH_DIR.mkdir(parents=True, exist_ok=True)

    results: dict[str, Any] = json.loads(RESULTS_PATH.read_text()) if RESULTS_PATH.is_file() else {}
    detail: dict[str, Any] = results.get("detail", {})
    runners: dict[str, Callable[[], dict[str, Any]]] = {
        "parse": lambda: part_parse(max(3, args.repeats)),
        "preprocess": lambda: part_preprocess(args.seed_rows, max(1, args.repeats // 2 + 1)),
        "scale": part_scale,
        "incremental": lambda: part_incremental(args.repeats),
        "full": part_full,
        "serving": lambda: part_serving(max(3, args.repeats // 2 + 1)),
        "score": lambda: part_score(args.score_rows),
    }
    for part in PARTS:  # in this order whatever the order asked
        if part not in parts:
            continue
        _log(f"part {part} (load average {os.getloadavg()[0]:.1f}) ...")
        load = _load()
        seconds, measured = _timed(runners[part])
        detail[part] = {
            "measured_at": _now(),
            "load_average_at_start": load,
            "took_seconds": round(seconds, 1),
        }
        detail[part].update(measured)
        # Write after every part, so a long run that dies later keeps what it measured.
        results = _summarise(results, detail)
        RESULTS_PATH.write_text(json.dumps(results, indent=2) + "\n")
    for line in report(results):
        print(line)
    print(f"written to {RESULTS_PATH.relative_to(ROOT)}")
    return 0


def _summarise(previous: dict[str, Any], detail: dict[str, Any]) -> dict[str, Any]:
    figures = {name: previous.get(name) for name in TARGETS}
    for part in detail.values():
        figures.update({k: v for k, v in part.items() if k in TARGETS})
    incremental = detail.get("incremental", {})
    return {
        "machine": machine(),
        "measured_at": max((p["measured_at"] for p in detail.values()), default=_now()),
        "command": "make bench",
        **{k: (round(v, 4) if isinstance(v, float) else v) for k, v in figures.items()},
        "incremental_time_fraction_is": incremental.get("incremental_time_fraction_is"),
        "targets": {
            name: {"target": f"{op} {bound:g}", "met": _met(name, figures[name])}
            for name, (op, bound, _) in TARGETS.items()
        },
        "detail": detail,
    }


if __name__ == "__main__":
    sys.exit(main())
