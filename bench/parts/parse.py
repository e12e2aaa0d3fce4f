"""Part ``parse``: the DAG file's parse time in fresh processes, after ``airflow.sdk``, and which
heavy libraries its import pulled in (none should be)."""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
from typing import Any

from bench.common import BENCH_DIR, PY, ROOT, child_env

HEAVY_MODULES = ("tensorflow", "keras", "pandas", "mlflow", "sklearn")
# figure -> (comparison, bound, unit)
FIGURES: dict[str, tuple[str, float, str]] = {"dag_parse_seconds": ("<", 0.5, "s")}

_PARSE_CODE = """
import json, sys, time
import airflow.sdk
sys.path.insert(0, sys.argv[1])
start = time.perf_counter()
import sentiment_retrain
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "heavy": [m for m in sys.argv[2:] if m in sys.modules]}))
"""


def measure(repeats: int) -> dict[str, Any]:
    """Import the DAG module in fresh processes, after ``airflow.sdk``; no heavy library."""
    home = BENCH_DIR / "parse-airflow-home"
    home.mkdir(parents=True, exist_ok=True)
    env = child_env(AIRFLOW_HOME=str(home), AIRFLOW__CORE__LOAD_EXAMPLES="False")
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


def run(args: argparse.Namespace) -> dict[str, Any]:
    """The part with the command line's repetitions (at least 3)."""
    return measure(max(3, args.repeats))


def describe(name: str, detail: dict[str, Any]) -> str:
    """The context of ``name`` in the report line, from this part's detail."""
    heavy = detail["heavy_modules_imported"] or "none"
    return f"median of {len(detail['runs_seconds'])}; heavy modules imported: {heavy}"
