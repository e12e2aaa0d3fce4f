"""Part ``preprocess``: the original notebook's cleaning loop against the project's cleaner (the
package's defaults, as the pipeline runs it) at 1x and 10x, and their agreement on the same rows
(the notebook's switches, ``PreprocessSettings.notebook()``, with the notebook's regex fixed)."""

from __future__ import annotations

import argparse
import statistics
from typing import Any

from bench.common import log, snapshot, timed

FIGURES: dict[str, tuple[str, float, str]] = {"preprocess_speedup_vs_seed": (">=", 1000.0, "x")}


def measure(seed_rows: int, repeats: int) -> dict[str, Any]:
    """The original notebook's loop and the project's cleaning side by side, plus their agreement."""
    import numpy as np
    import pandas as pd

    from bench.seed_baseline import FIXED_PATTERN, SEED_PATTERN, seed_clean
    from review_sentiment import schema
    from review_sentiment.cleaning_rules import PreprocessSettings
    from review_sentiment.preprocess import TextCleaner, clean_frame

    frame = pd.read_parquet(snapshot(1))
    texts = frame[schema.TEXT].tolist()
    picks = np.sort(np.random.default_rng(0).choice(len(texts), size=seed_rows, replace=False))
    sample = [texts[i] for i in picks]

    log(f"seed loop on {seed_rows} reviews (about {seed_rows / 44:.0f} s) ...")
    seed_seconds, seed_out = timed(lambda: seed_clean(sample, SEED_PATTERN))
    log("notebook loop again with the regex fixed, for the agreement check ...")
    fixed_out = seed_clean(sample, FIXED_PATTERN)
    project = TextCleaner(PreprocessSettings.notebook(unescape_html=False)).clean_many(sample)
    disagree = [i for i, (a, b) in enumerate(zip(project, fixed_out, strict=True)) if a != b]
    changed_by_bug = sum(a != b for a, b in zip(seed_out, fixed_out, strict=True))

    settings = PreprocessSettings()  # what the pipeline runs: the package's defaults
    rates: dict[str, dict[str, Any]] = {}
    for factor in (1, 10):
        data = frame if factor == 1 else pd.read_parquet(snapshot(factor))
        log(f"project preprocess on {factor}x ({len(data)} reviews), {repeats} cold runs ...")
        runs = [timed(lambda d=data: clean_frame(d, settings))[0] for _ in range(repeats)]
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


def run(args: argparse.Namespace) -> dict[str, Any]:
    """The part with the command line's seed rows and repetitions."""
    return measure(args.seed_rows, max(1, args.repeats // 2 + 1))


def describe(name: str, detail: dict[str, Any]) -> str:
    """The context of ``name`` in the report line, from this part's detail."""
    d = detail
    x1, x10, seed, agree = d["project"]["x1"], d["project"]["x10"], d["seed_loop"], d["agreement"]
    return (
        f"project {x1['rows_per_second']:,} rows/s on {x1['rows']:,} reviews, "
        f"{x10['rows_per_second']:,} rows/s on {x10['rows']:,} ({d['speedup_vs_seed_at_10x']:,.0f}x); "
        f"notebook loop {seed['rows_per_second']} rows/s on {seed['rows']:,}; "
        f"{agree['rows_differing']} of {agree['rows_compared']:,} rows differ from the notebook "
        "(regex fixed)"
    )
