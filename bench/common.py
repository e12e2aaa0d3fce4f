"""What every part of the benchmark shares: paths, timing and logging helpers, the environment of
child processes, and the data (the real review file, its scaled copies, ingest's snapshots).

Data and scratch files go to .local/bench/ (never committed: the review data set is third-party).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = ROOT / ".local" / "bench"
PY = sys.executable


def log(message: str) -> None:
    """Progress to stderr, timestamped (the figures go to stdout)."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def now() -> str:
    """The UTC time, to the second, as results.json records it."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def load_average() -> dict[str, float]:
    """The machine's load averages: the figures' context (load changes the times)."""
    one, five, fifteen = os.getloadavg()
    return {"1min": one, "5min": five, "15min": fifteen}


def child_env(**extra: str) -> dict[str, str]:
    """This environment for a child process, the repository and include/ importable, plus ``extra``."""
    env = dict(os.environ)
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(ROOT), str(ROOT / "include"), env.get("PYTHONPATH")])
    )
    env.update(extra)
    return env


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """``fn()``'s wall time in seconds, and its result."""
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


# --- Data -------------------------------------------------------------------------------------


def reviews_path() -> Path:
    """The real review file (REVIEWS_PATH, else the shipped data/ file); exits when it is missing."""
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
    log(f"generating {factor}x data into {out.parent} ...")
    seconds, (rows, repeats) = timed(lambda: scale_data.write_scaled_csv(source, out, factor))
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
