"""The stage package has no Airflow import at all, lazy ones included: every stage runs and is
tested without Airflow, and what touches Airflow (mail, XCom, the task context) lives in dags/."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from review_sentiment.config import PACKAGE_DIR


def airflow_imports(path: Path) -> list[str]:
    """``file:line module`` of every import of ``airflow`` (or a submodule) anywhere in ``path``:
    module level, inside functions, under ``TYPE_CHECKING``, or through ``importlib``/``__import__``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                names = [node.args[0].value]
        found += [
            f"{path.name}:{node.lineno} {n}" for n in names if n == "airflow" or n.startswith("airflow.")
        ]
    return found


def test_no_module_of_the_stage_package_imports_airflow() -> None:
    modules = sorted(PACKAGE_DIR.rglob("*.py"))
    assert len(modules) > 20  # the walk found the package
    assert [hit for path in modules for hit in airflow_imports(path)] == []


@pytest.mark.parametrize(
    "code",
    [
        "import airflow",
        "from airflow.sdk import task",
        "def send():\n    from airflow.providers.smtp.notifications.smtp import SmtpNotifier\n",
        "if TYPE_CHECKING:\n    import airflow.sdk as sdk\n",
        "import importlib\nhook = importlib.import_module('airflow.hooks.base')\n",
    ],
)
def test_the_check_finds_every_kind_of_airflow_import(tmp_path: Path, code: str) -> None:
    module = tmp_path / "m.py"
    module.write_text(code)
    assert len(airflow_imports(module)) == 1
    module.write_text("import airflowish\nfrom review_sentiment import airflow_names\n")
    assert airflow_imports(module) == []
