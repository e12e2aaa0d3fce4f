"""The size limits of issue 19, measured: modules and functions a reader can hold in their head.

    python scripts/check_sizes.py [ROOT]

Fails (exit 1), listing each offender, when:

* a module under include/ has more than 400 lines, under dags/ more than 300;
* a module of the register stage (include/**/register*.py, versions.py, gate.py) more than 300;
* a function or method (nested ones included) under include/, dags/ or plugins/ more than 60
  lines, from its ``def`` line to its last line (decorators excluded), except the EXCEPTIONS below.

Standard library only; run by tests/code/test_sizes.py (so by ``make test`` and CI) and by
``make lint``.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

MODULE_LIMITS = {"include": 400, "dags": 300}
REGISTER_MODULES = ("register*.py", "versions.py", "gate.py")
REGISTER_LIMIT = 300
FUNCTION_LIMIT = 60
FUNCTION_FOLDERS = ("include", "dags", "plugins")
# Functions allowed past FUNCTION_LIMIT, by module and name, each with its reason.
EXCEPTIONS: dict[tuple[str, str], str] = {
    # The fast batch cleaner's kernels: byte masks over Arrow buffers, kept whole so that each
    # reads as one pass; their contract is the exhaustive equality test against ``clean``.
    ("include/review_sentiment/fast_clean.py", "_clean_batch"): "fast cleaner kernel",
    ("include/review_sentiment/fast_clean.py", "_word_codes"): "fast cleaner kernel",
    ("include/review_sentiment/fast_clean.py", "_patch_cant"): "fast cleaner kernel",
}


@dataclass(frozen=True)
class Offender:
    """One module or function over its limit."""

    path: str  # relative to the root, with forward slashes
    what: str  # "module", or the function's qualified name
    lines: int
    limit: int

    def __str__(self) -> str:
        kind = "module" if self.what == "module" else f"function {self.what}"
        return f"{self.path}: {kind} has {self.lines} lines (limit {self.limit})"


def _module_limit(rel: PurePosixPath) -> int | None:
    limits = [MODULE_LIMITS[rel.parts[0]]] if rel.parts[0] in MODULE_LIMITS else []
    if rel.parts[0] == "include" and any(rel.match(pattern) for pattern in REGISTER_MODULES):
        limits.append(REGISTER_LIMIT)
    return min(limits, default=None)


def _functions(tree: ast.AST, prefix: str = "") -> list[tuple[str, ast.AST]]:
    """Every function and method with its qualified name (``Class.method``, ``outer.inner``)."""
    found = []
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            name = f"{prefix}{node.name}"
            if not isinstance(node, ast.ClassDef):
                found.append((name, node))
            found.extend(_functions(node, f"{name}."))
        else:
            found.extend(_functions(node, prefix))
    return found


def offenders(root: Path) -> list[Offender]:
    """Every module and function of ``root``'s include/, dags/ and plugins/ over its limit."""
    found = []
    for folder in FUNCTION_FOLDERS:
        for path in sorted((root / folder).rglob("*.py")):
            rel = PurePosixPath(path.relative_to(root).as_posix())
            text = path.read_text(encoding="utf-8")
            limit = _module_limit(rel)
            lines = len(text.splitlines())
            if limit is not None and lines > limit:
                found.append(Offender(str(rel), "module", lines, limit))
            for name, node in _functions(ast.parse(text, str(path))):
                length = node.end_lineno - node.lineno + 1  # type: ignore[attr-defined]
                if length > FUNCTION_LIMIT and (str(rel), name.rsplit(".", 1)[-1]) not in EXCEPTIONS:
                    found.append(Offender(str(rel), name, length, FUNCTION_LIMIT))
    return found


def main(argv: list[str] | None = None) -> int:
    """Print the offenders of the repository (or of ``argv[0]``); 1 if there is any."""
    args = sys.argv[1:] if argv is None else argv
    root = Path(args[0]) if args else Path(__file__).resolve().parents[1]
    found = offenders(root)
    for offender in found:
        print(offender)
    print(
        f"sizes: {len(found)} over the limits" if found else "sizes: every module and function within limits"
    )
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
