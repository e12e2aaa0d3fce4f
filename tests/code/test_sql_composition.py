"""SQL is never built from strings: every statement the package sends is a constant or composed with
``psycopg2.sql`` (identifiers quoted by the driver), and values travel as parameters.

The round trip of SQL-looking review text through a real table is in
tests/integration/test_bad_input_on_postgres.py.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from review_sentiment.config import PROJECT_ROOT

SOURCES = sorted((PROJECT_ROOT / "include" / "review_sentiment").rglob("*.py"))
EXECUTORS = {"execute", "executemany", "execute_values", "mogrify", "read_sql", "read_sql_query"}


def _is_string_building(node: ast.AST) -> bool:
    if isinstance(node, ast.JoinedStr):
        return True
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Mod):
        return True
    # "...".format(...) on a plain string (psycopg2's sql.SQL(...).format(...) is fine).
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "format"
        and isinstance(node.func.value, ast.Constant | ast.JoinedStr)
    )


def _problems(source: str, name: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source, filename=name)):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if called not in EXECUTORS or not node.args:
            continue
        # execute_values(cur, sql, rows): the statement is the second argument.
        statement = node.args[1] if called == "execute_values" and len(node.args) > 1 else node.args[0]
        if _is_string_building(statement):
            found.append(f"{name}:{node.lineno} builds the SQL for {called}() from strings")
    return found


def test_the_scan_covers_the_sql_code() -> None:
    package = PROJECT_ROOT / "include" / "review_sentiment"
    assert "cur.execute(" in (package / "sources.py").read_text()
    assert "execute_values(" in (package / "reviews_db.py").read_text()


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_no_sql_built_from_strings(path: Path) -> None:
    assert _problems(path.read_text(), path.name) == []


@pytest.mark.parametrize(
    "snippet",
    [
        "cur.execute(f'SELECT * FROM {table}')",
        "cur.execute('SELECT * FROM ' + table)",
        "cur.execute('SELECT * FROM %s' % table)",
        "cur.execute('SELECT * FROM {}'.format(table))",
        "execute_values(cur, f'INSERT INTO {t} VALUES %s', rows)",
    ],
)
def test_the_scan_finds_string_built_sql(snippet: str) -> None:
    assert len(_problems(snippet, "probe.py")) == 1


@pytest.mark.parametrize(
    "snippet",
    [
        "cur.execute(sql.SQL('SELECT * FROM {t}').format(t=sql.Identifier(table)), params)",
        "cur.execute(query, params)",
        "cur.execute('SELECT 1')",
    ],
)
def test_composed_and_constant_sql_pass(snippet: str) -> None:
    assert _problems(snippet, "probe.py") == []
