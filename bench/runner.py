"""`make bench`: the speed-and-scale figures, measured on this machine.

    .venv/bin/python -m bench [--parts parse,preprocess,scale,incremental,full,serving,score]

Prints one line per figure and writes them, with their details, to bench/results.json. Parts
not run keep their previous figures there (each part records when it was measured). Data and
scratch files go to .local/bench/ (never committed: the review data set is third-party).
Progress goes to stderr; the figures to stdout.

Each part is a module of bench/parts/ with its FIGURES (figure -> comparison, bound, unit),
``run(args)`` (its measurement, as a dict of figures and details) and ``describe(name, detail)``
(the context of one figure's line); this runner picks the parts, times them and keeps the record.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
from pathlib import Path
from types import ModuleType
from typing import Any

from bench.common import BENCH_DIR, ROOT, load_average, log, now, timed
from bench.parts import full, incremental, parse, preprocess, scale, score, serving

RESULTS_PATH = ROOT / "bench" / "results.json"
# Parts in the order they run, whatever the order asked.
PARTS: dict[str, ModuleType] = {
    "parse": parse,
    "preprocess": preprocess,
    "scale": scale,
    "incremental": incremental,
    "full": full,
    "serving": serving,
    "score": score,
}
# The figures in the report's (and results.json's) order: the README table's.
FIGURE_PARTS = ("preprocess", "full", "scale", "incremental", "parse", "serving", "score")
PART_OF: dict[str, str] = {name: part for part in FIGURE_PARTS for name in PARTS[part].FIGURES}
TARGETS: dict[str, tuple[str, float, str]] = {name: PARTS[PART_OF[name]].FIGURES[name] for name in PART_OF}


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
    if unit == "%":
        return f"{value:.1%}"
    if unit == "x":
        return f"{value:,.1f}x" if value < 100 else f"{value:,.0f}x"
    return f"{value:,.2f} {unit}" if value < 10 else f"{value:,.0f} {unit}"


def _context(name: str, detail: dict[str, Any]) -> str:
    part = detail.get(PART_OF[name])
    return PARTS[PART_OF[name]].describe(name, part) if part else "not measured"


def report(results: dict[str, Any]) -> list[str]:
    """One line per figure: value, target, met or not, and what it is."""
    lines = []
    for name, (op, bound, _) in TARGETS.items():
        value = results.get(name)
        verdict = {True: "MET", False: "NOT MET", None: "-"}[_met(name, value)]
        target = f"{op} {_show(name, bound)}"
        lines.append(
            f"{name:<31} {_show(name, value):>10}  target {target:<10} {verdict:<8} "
            f"{_context(name, results.get('detail', {}))}"
        )
    return lines


def _summarise(previous: dict[str, Any], detail: dict[str, Any]) -> dict[str, Any]:
    figures = {name: previous.get(name) for name in TARGETS}
    for part in detail.values():
        figures.update({k: v for k, v in part.items() if k in TARGETS})
    incremental_detail = detail.get("incremental", {})
    return {
        "machine": machine(),
        "measured_at": max((p["measured_at"] for p in detail.values()), default=now()),
        "command": "make bench",
        **{k: (round(v, 4) if isinstance(v, float) else v) for k, v in figures.items()},
        "incremental_time_fraction_is": incremental_detail.get("incremental_time_fraction_is"),
        "targets": {
            name: {"target": f"{op} {bound:g}", "met": _met(name, figures[name])}
            for name, (op, bound, _) in TARGETS.items()
        },
        "detail": detail,
    }


# --- Command line -----------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line: which parts, and the sizes of the measurements.

    Raises:
        SystemExit: an unknown part (argparse's error, exit status 2), or ``--help``.
    """
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--parts", default=",".join(PARTS), help=f"comma-separated subset of {','.join(PARTS)}"
    )
    parser.add_argument("--seed-rows", type=int, default=2000, help="reviews for the seed loop (>= 2000)")
    parser.add_argument("--repeats", type=int, default=5, help="repetitions of the short in-process timings")
    parser.add_argument("--score-rows", type=int, default=score.SCORE_ROWS, help="reviews for the score part")
    args = parser.parse_args(argv)
    args.parts = [p for p in args.parts.split(",") if p]
    unknown = sorted(set(args.parts) - set(PARTS))
    if unknown:
        parser.error(f"unknown parts {unknown}; choose from {tuple(PARTS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the chosen parts in order, writing bench/results.json after each, then print the report.

    Args:
        argv: The command line (default: the process's).

    Returns:
        0 (a figure that misses its target is reported, not an error).
    """
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    BENCH_DIR.mkdir(parents=True, exist_ok=True)

    results: dict[str, Any] = json.loads(RESULTS_PATH.read_text()) if RESULTS_PATH.is_file() else {}
    detail: dict[str, Any] = results.get("detail", {})
    for name, part in PARTS.items():
        if name not in args.parts:
            continue
        log(f"part {name} (load average {os.getloadavg()[0]:.1f}) ...")
        load = load_average()
        seconds, measured = timed(lambda part=part: part.run(args))
        detail[name] = {
            "measured_at": now(),
            "load_average_at_start": load,
            "took_seconds": round(seconds, 1),
        }
        detail[name].update(measured)
        # Write after every part, so a long run that dies later keeps what it measured.
        results = _summarise(results, detail)
        RESULTS_PATH.write_text(json.dumps(results, indent=2) + "\n")
    for line in report(results):
        print(line)
    print(f"written to {RESULTS_PATH.relative_to(ROOT)}")
    return 0
