"""Run one CLI stage in a process of its own; write its times and peak memory as JSON.

    python -m bench.stage_timer TIMING_JSON <stage> [stage arguments...]

This process stays small (standard library only) and starts the stage as its child, so the
child's peak resident set (``ru_maxrss`` from ``os.wait4``) is the stage's own: Linux carries a
parent's memory high-water mark into a child it forks, which is why the large benchmark process
does not start stages directly. The child imports the libraries the stage imports lazily,
timed apart, then runs the CLI's own ``main`` with the same arguments as
``python -m review_sentiment``; so ``stage_seconds`` is the work that grows with the data and
``import_seconds`` the fixed start-up cost.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

PRELOAD: dict[str, tuple[str, ...]] = {
    "ingest": ("pandas", "pyarrow.parquet", "review_sentiment.ingest"),
    "preprocess": ("pandas", "pyarrow.parquet", "nltk.corpus", "nltk.stem", "review_sentiment.preprocess"),
    "tokenize": (
        "pandas",
        "pyarrow.parquet",
        "sklearn.model_selection",
        "keras",
        "review_sentiment.tokenize",
    ),
    "score": ("pandas", "pyarrow.parquet", "keras", "mlflow.pyfunc", "review_sentiment.batch_score"),
}
_CHILD = "--child"


def run_stage(timing_path: Path, stage_argv: list[str]) -> int:
    """In the child: import, run the stage through the CLI, write the two times."""
    started = time.perf_counter()
    for module in PRELOAD.get(stage_argv[0], ()):
        importlib.import_module(module)
    imported = time.perf_counter()
    from review_sentiment.cli import main as cli_main

    code = cli_main(stage_argv)
    done = time.perf_counter()
    timing = {"import_seconds": imported - started, "stage_seconds": done - imported, "exit_code": code}
    timing_path.write_text(json.dumps(timing) + "\n")
    return code


def launch(timing_path: Path, stage_argv: list[str]) -> int:
    """In the small parent: start the child, wait for it, add wall time and peak RSS."""
    start = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-m", "bench.stage_timer", _CHILD, str(timing_path), *stage_argv]
    )
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    child.returncode = code = os.waitstatus_to_exitcode(status)
    timing = json.loads(timing_path.read_text()) if timing_path.is_file() else {"exit_code": code}
    timing.update({"wall_seconds": wall, "peak_rss_kib": usage.ru_maxrss})  # KiB on Linux
    timing_path.write_text(json.dumps(timing) + "\n")
    return code


if __name__ == "__main__":
    args = sys.argv[1:]
    if args and args[0] == _CHILD:
        sys.exit(run_stage(Path(args[1]), args[2:]))
    sys.exit(launch(Path(args[0]), args[1:]))
