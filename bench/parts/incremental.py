"""Part ``incremental``: a week with 5% new reviews, preprocessed with last week's cache, against
a cold run (the package's default settings): time fractions, cache hits, identical output."""

from __future__ import annotations

import argparse
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

from bench.common import BENCH_DIR, log, snapshot, timed

NEW_SHARE = 0.05  # the incremental week: this share of the reviews is new
# A ratio shown as a percentage.
FIGURES: dict[str, tuple[str, float, str]] = {"incremental_time_fraction": ("<=", 0.10, "%")}


def _incremental(factor: int, repeats: int) -> dict[str, Any]:
    """Last week (5% of the reviews missing) fills the cache; this week runs on all of them."""
    import numpy as np
    import pandas as pd

    from review_sentiment.cleaning_rules import PreprocessSettings
    from review_sentiment.layout import OUTPUT_NAME, SETTINGS_NAME
    from review_sentiment.preprocess import TextCleaner, clean_frame, preprocess
    from review_sentiment.preprocess_cache import PreprocessCache, cleaner_input_array

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
    cold_with_cache, _ = timed(lambda: preprocess(last_week, work / "last-week", settings, week1_cache))

    def fresh_cache(tag: str) -> Path:
        copy = work / f"cache-{tag}"
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(week1_cache, copy)  # not timed: each run starts from last week's cache
        return copy

    stage = {"cold": [], "warm": []}
    cleaning = {"cold": [], "warm": []}
    hits = misses = 0
    for i in range(repeats):  # interleaved, so load changes on the machine hit both alike
        stage["cold"].append(timed(lambda: preprocess(this_week, work / "cold", settings))[0])
        cache_dir = fresh_cache(f"stage-{i}")
        stage["warm"].append(timed(lambda d=cache_dir: preprocess(this_week, work / "warm", settings, d))[0])
        cleaning["cold"].append(timed(lambda: clean_frame(frame, settings))[0])
        cache_dir = fresh_cache(f"clean-{i}")
        start = time.perf_counter()
        # The same call as the cold side, through last week's cache: texts and titles alike.
        cache = PreprocessCache(cache_dir, TextCleaner(settings))
        clean_frame(frame, cache)
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


def measure(repeats: int) -> dict[str, Any]:
    """The incremental week at 1x (the figure) and at 10x (detail)."""
    log(f"incremental week at 1x, {repeats} interleaved cold/warm runs ...")
    at_1x = _incremental(1, repeats)
    log("incremental week at 10x ...")
    at_10x = _incremental(10, max(1, repeats // 2))
    return {
        "incremental_time_fraction": at_1x["cleaning_only"]["fraction"],
        "incremental_time_fraction_is": (
            "cleaning only at 1x: median time of clean_frame (texts and titles) through last week's "
            "cache (a fresh TextCleaner, cache load, look-up of every review and title, cleaning "
            "the new 5%, the output columns) over the median time of clean_frame with no cache "
            "(from the same frame to the same columns). The whole "
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


def run(args: argparse.Namespace) -> dict[str, Any]:
    """The part with the command line's repetitions."""
    return measure(args.repeats)


def describe(name: str, detail: dict[str, Any]) -> str:
    """The context of ``name`` in the report line, from this part's detail."""
    x1 = detail["x1"]
    return (
        f"cleaning only; whole stage {x1['whole_stage']['fraction']:.1%}; "
        f"{x1['cleaned']:,} of {x1['reviews']:,} cleaned; "
        f"identical output: {x1['output_identical_to_cold_run']}"
    )
