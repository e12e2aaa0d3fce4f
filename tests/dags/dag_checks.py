"""Checks both DAG files must pass: a light, fast parse and thin task bodies."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from typing import Any

from review_sentiment.config import PROJECT_ROOT

DAGS = PROJECT_ROOT / "dags"
HEAVY = ("tensorflow", "keras", "pandas", "mlflow", "sklearn", "psycopg2", "pyarrow")


def parse_in_fresh_process(module: str) -> dict[str, Any]:
    """Import DAG ``module`` in a new interpreter after ``airflow.sdk``: its import time in CPU
    seconds (the process's own, so a loaded machine does not flake it) and the heavy libraries
    it pulled in."""
    code = (
        "import importlib, json, sys, time\n"
        "import airflow.sdk\n"
        "sys.path.insert(0, sys.argv[1])\n"
        "start = time.process_time()\n"
        "importlib.import_module(sys.argv[2])\n"
        "elapsed = time.process_time() - start\n"
        "heavy = [m for m in sys.argv[3].split(',') if m in sys.modules]\n"
        "print(json.dumps({'seconds': elapsed, 'heavy': heavy}))\n"
    )
    argv = [sys.executable, "-c", code, str(DAGS), module, ",".join(HEAVY)]
    done = subprocess.run(argv, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def task_body_sizes(filename: str) -> dict[str, int]:
    """Non-blank lines of each decorated function's body (past its docstring) in a DAG file."""
    lines = (DAGS / filename).read_text().splitlines()
    sizes = {}
    for node in ast.walk(ast.parse("\n".join(lines))):
        if isinstance(node, ast.FunctionDef) and node.decorator_list:
            body = node.body[1:] if isinstance(node.body[0], ast.Expr) else node.body
            sizes[node.name] = sum(
                1 for line in lines[body[0].lineno - 1 : body[-1].end_lineno] if line.strip()
            )
    return sizes
