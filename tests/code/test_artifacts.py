"""Unit tests of atomic, run-scoped outputs and of the artifact-root path check."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from review_sentiment.artifacts import atomic_file, read_json, safe_path, write_json
from review_sentiment.errors import UnsafePathError


class Boom(Exception):
    pass


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_atomic_file_renames_into_place_on_success(tmp_path: Path) -> None:
    final = tmp_path / "deep" / "out.txt"
    with atomic_file(final) as tmp:
        tmp.write_text("new")
        assert tmp.parent == final.parent
        assert not final.exists()  # readers never see the half-written file
    assert final.read_text() == "new"
    assert _leftovers(final.parent) == []


def test_atomic_file_replaces_an_earlier_attempt(tmp_path: Path) -> None:
    final = tmp_path / "out.txt"
    final.write_text("old")
    with atomic_file(final) as tmp:
        tmp.write_text("new")
    assert final.read_text() == "new"
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("existing", [None, "old"])
def test_atomic_file_leaves_nothing_on_failure(tmp_path: Path, existing: str | None) -> None:
    final = tmp_path / "out.txt"
    if existing is not None:
        final.write_text(existing)

    def write_then_fail() -> None:
        with atomic_file(final) as tmp:
            tmp.write_text("partial")
            raise Boom

    with pytest.raises(Boom):
        write_then_fail()
    assert (final.read_text() if final.exists() else None) == existing
    assert _leftovers(tmp_path) == []


def test_json_round_trip(tmp_path: Path) -> None:
    payload = {"b": [1, 2.5, None], "a": "é", "path": tmp_path}
    path = write_json(tmp_path / "x.json", payload)
    assert read_json(path) == {"a": "é", "b": [1, 2.5, None], "path": str(tmp_path)}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "artifacts"
    (root / "dag" / "run").mkdir(parents=True)
    return root


@pytest.mark.parametrize("relative", ["dag/run/out.parquet", "dag/./run/../run/x", "new/file", "."])
def test_safe_path_accepts_paths_inside_the_root(root: Path, relative: str) -> None:
    resolved = safe_path(relative, root)
    assert resolved == (root / relative).resolve()
    assert resolved.is_relative_to(root.resolve())


def test_safe_path_accepts_an_absolute_path_inside_the_root(root: Path) -> None:
    inside = root / "dag" / "run" / "manifest.json"
    assert safe_path(str(inside), root) == inside.resolve()


@pytest.mark.parametrize(
    "path", ["../outside.txt", "dag/../../outside", "dag/run/../../../etc/passwd", "/etc/passwd", "/"]
)
def test_safe_path_rejects_escapes(root: Path, path: str) -> None:
    with pytest.raises(UnsafePathError, match="is outside the artifact root"):
        safe_path(path, root)


def test_safe_path_rejects_a_sibling_with_the_root_as_prefix(root: Path) -> None:
    sibling = root.parent / (root.name + "-evil") / "x"
    with pytest.raises(UnsafePathError, match="outside"):
        safe_path(str(sibling), root)


def test_safe_path_rejects_symlinks_out_of_the_root(root: Path, tmp_path: Path) -> None:
    outside = tmp_path / "secret"
    outside.mkdir()
    (outside / "key").write_text("x")
    os.symlink(outside, root / "dag" / "link")
    with pytest.raises(UnsafePathError, match="outside"):
        safe_path("dag/link/key", root)
    with pytest.raises(UnsafePathError, match="outside"):
        safe_path(str(root / "dag" / "link" / "key"), root)


def test_safe_path_follows_symlinks_that_stay_inside(root: Path) -> None:
    os.symlink(root / "dag" / "run", root / "latest")
    assert safe_path("latest/x", root) == (root / "dag" / "run" / "x").resolve()


@pytest.mark.parametrize("path", ["dag/run\x00.txt", "\x00", "/etc/passwd\x00"])
def test_safe_path_rejects_nul_bytes(root: Path, path: str) -> None:
    with pytest.raises(UnsafePathError, match="NUL byte"):
        safe_path(path, root)
