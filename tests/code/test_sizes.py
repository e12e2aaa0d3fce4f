"""The size limits (scripts/check_sizes.py): the repository keeps them, and the check counts what
the limits say."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from review_sentiment.config import PROJECT_ROOT
from scripts.check_sizes import FUNCTION_LIMIT, REGISTER_LIMIT, offenders

CHECK = PROJECT_ROOT / "scripts" / "check_sizes.py"


def test_the_repository_keeps_the_size_limits() -> None:
    done = subprocess.run(
        [sys.executable, str(CHECK)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _function(name: str, lines: int, indent: str = "") -> str:
    """A function of exactly ``lines`` lines."""
    body = "".join(f"{indent}    x{i} = {i}\n" for i in range(lines - 2))
    return f"{indent}def {name}():\n{body}{indent}    return 0\n"


def _write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.mark.parametrize(
    ("rel", "limit"),
    [
        ("include/pkg/stage.py", 400),
        ("dags/a_dag.py", 300),
        ("include/pkg/register.py", REGISTER_LIMIT),
        ("include/pkg/register_steps.py", REGISTER_LIMIT),
        ("include/pkg/versions.py", REGISTER_LIMIT),
        ("include/pkg/gate.py", REGISTER_LIMIT),
    ],
)
def test_a_module_over_its_limit_is_reported(tmp_path: Path, rel: str, limit: int) -> None:
    _write(tmp_path, rel, "x = 0\n" * limit)
    assert offenders(tmp_path) == []
    _write(tmp_path, rel, "x = 0\n" * (limit + 1))
    [found] = offenders(tmp_path)
    assert (found.path, found.what, found.lines, found.limit) == (rel, "module", limit + 1, limit)


def test_plugins_have_no_module_limit(tmp_path: Path) -> None:
    _write(tmp_path, "plugins/links.py", "x = 0\n" * 1000)
    assert offenders(tmp_path) == []


def test_functions_and_methods_over_the_limit_are_reported(tmp_path: Path) -> None:
    method = _function("long_method", FUNCTION_LIMIT + 1, indent="    ")
    text = (
        _function("fits", FUNCTION_LIMIT) + _function("too_long", FUNCTION_LIMIT + 1) + f"class C:\n{method}"
    )
    _write(tmp_path, "plugins/p.py", text)
    found = {(o.what, o.lines) for o in offenders(tmp_path)}
    assert found == {("too_long", FUNCTION_LIMIT + 1), ("C.long_method", FUNCTION_LIMIT + 1)}


def test_the_fast_cleaners_kernels_are_the_only_exceptions(tmp_path: Path) -> None:
    kernels = _function("_clean_batch", 100) + _function("_word_codes", 100) + _function("_patch_cant", 100)
    _write(tmp_path, "include/review_sentiment/fast_clean.py", kernels + _function("helper", 61))
    _write(tmp_path, "include/review_sentiment/preprocess.py", _function("_clean_batch", 61))
    found = {(o.path, o.what) for o in offenders(tmp_path)}
    assert found == {
        ("include/review_sentiment/fast_clean.py", "helper"),
        ("include/review_sentiment/preprocess.py", "_clean_batch"),
    }
