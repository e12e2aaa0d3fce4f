"""Path tampering: the ``source`` param (dag_run.conf) and paths received through XCom.

``source`` is a user-given value: a file only under the allowed data roots
(``SENTIMENT_DATA_ROOTS``, default the folder of ``REVIEWS_PATH``), or ``postgres:<table>`` with a
plain identifier. XCom paths must stay inside the artifact root. Both are refused before any
file is opened, which an audit hook on ``open`` checks.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from review_sentiment.config import Settings
from review_sentiment.errors import PipelineError, UnsafePathError
from review_sentiment.sources import check_source

# Paths passed to open() while a block runs; None outside the block. The hook stays installed
# (audit hooks cannot be removed) but records nothing outside ``no_file_opened``.
_OPENED: list[str] | None = None


def _audit(event: str, args: tuple) -> None:
    if _OPENED is not None and event == "open":
        _OPENED.append(str(args[0]))


sys.addaudithook(_audit)


@contextmanager
def no_file_opened() -> Iterator[None]:
    global _OPENED
    _OPENED = []
    try:
        yield
    finally:
        opened, _OPENED = _OPENED, None
        assert opened == [], f"files opened during the check: {opened}"


@pytest.fixture
def roots(tmp_path: Path) -> dict[str, Path]:
    data, extra, outside = tmp_path / "data", tmp_path / "extra", tmp_path / "outside"
    for folder in (data, extra, outside):
        folder.mkdir()
        (folder / "reviews.csv").write_text("x\n")
    os.symlink(outside / "reviews.csv", data / "link-out.csv")
    os.symlink(outside, data / "dir-out")
    os.symlink(data / "reviews.csv", data / "link-in.csv")
    return {"data": data, "extra": extra, "outside": outside}


# --- the source param -----------------------------------------------------------------------------
def test_default_root_is_the_reviews_folder(tmp_path: Path) -> None:
    env = {"REVIEWS_PATH": str(tmp_path / "d" / "reviews.csv.gz")}
    assert Settings.from_env(env).data_roots == (tmp_path / "d",)
    listed = {"SENTIMENT_DATA_ROOTS": f"{tmp_path / 'a'}{os.pathsep}{os.pathsep}{tmp_path / 'b'}", **env}
    assert Settings.from_env(listed).data_roots == (tmp_path / "a", tmp_path / "b")


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{data}/reviews.csv", "{data}/reviews.csv"),
        ("reviews.csv", "{data}/reviews.csv"),  # relative: inside the first root
        ("sub/../reviews.csv", "{data}/reviews.csv"),
        ("{data}/link-in.csv", "{data}/reviews.csv"),  # a symlink that stays inside
        ("{extra}/reviews.csv", "{extra}/reviews.csv"),  # any listed root
    ],
)
def test_files_under_a_data_root_are_accepted(roots: dict[str, Path], source: str, expected: str) -> None:
    with no_file_opened():
        kind, path = check_source(source.format(**roots), [roots["data"], roots["extra"]])
    assert kind == "file"
    assert path == str(Path(expected.format(**roots)).resolve())


@pytest.mark.parametrize(
    "source",
    [
        "../outside/reviews.csv",
        "../../../../../../etc/passwd",
        "/etc/passwd",
        "{outside}/reviews.csv",
        "{data}/../outside/reviews.csv",
        "{data}/link-out.csv",  # symlink to a file out of the root
        "{data}/dir-out/reviews.csv",  # through a symlinked folder
        "{data}-evil/reviews.csv",  # the root's name as a prefix
    ],
)
def test_paths_out_of_the_data_roots_are_refused(roots: dict[str, Path], source: str) -> None:
    with no_file_opened(), pytest.raises(UnsafePathError, match="outside the allowed data roots") as caught:
        check_source(source.format(**roots), [roots["data"], roots["extra"]])
    assert "\n" not in str(caught.value)
    assert isinstance(caught.value, PipelineError)  # the DAG fails it without retries


@pytest.mark.parametrize("source", ["reviews.csv\x00.txt", "\x00", "postgres:reviews\x00"])
def test_nul_bytes_are_refused(roots: dict[str, Path], source: str) -> None:
    with no_file_opened(), pytest.raises(UnsafePathError, match="NUL byte"):
        check_source(source, [roots["data"]])


def test_no_roots_refuses_every_file() -> None:
    with pytest.raises(UnsafePathError, match="no data roots"):
        check_source("/tmp/reviews.csv", [])


@pytest.mark.parametrize(
    "source",
    [
        "postgresql://reader:hunter2@db.example:5432/reviews?table=reviews",
        "postgres://db.example/reviews",
        "file:///etc/passwd",
        "https://example.com/reviews.csv",
    ],
)
def test_urls_are_refused_without_echoing_a_password(roots: dict[str, Path], source: str) -> None:
    with pytest.raises(UnsafePathError, match="is a URL") as caught:
        check_source(source, [roots["data"]])
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize("table", ["reviews", "public.reviews", "_x9", "Reviews_2026"])
def test_plain_table_names_are_accepted(table: str) -> None:
    assert check_source(f"postgres:{table}", []) == ("table", table)


@pytest.mark.parametrize(
    "table",
    [
        "",
        "reviews; DROP TABLE reviews",
        "reviews&host=attacker.example",  # would add a libpq parameter to the connection URL
        "reviews?sslmode=disable",
        'public."reviews"',
        "a.b.c",
        "9reviews",
        "../reviews",
        "reviews--",
        "x" * 64,
    ],
)
def test_other_table_names_are_refused(table: str) -> None:
    with pytest.raises(UnsafePathError, match="not a plain"):
        check_source(f"postgres:{table}", [])


@pytest.mark.parametrize("name", ["../escape", "a/b", "", "..", ".hidden", "x\x00y"])
def test_a_model_name_cannot_leave_the_locks_folder(tmp_path: Path, name: str) -> None:
    from review_sentiment.layout import ArtifactLayout

    with pytest.raises(ValueError, match="not usable as a folder name"):
        ArtifactLayout(tmp_path).lock_file(name)
