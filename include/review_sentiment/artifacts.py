"""Atomic, run-scoped outputs: write to a temporary name, then rename into place."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from review_sentiment.errors import UnsafePathError


@contextmanager
def atomic_file(final: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; rename it over ``final`` only on success.

    Readers never see a half-written file, and a retry overwrites the previous attempt.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: Path, payload: Any) -> Path:
    """Write ``payload`` as JSON atomically and return the path."""
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")
    return Path(path)


def read_json(path: Path) -> Any:
    """Read a JSON file."""
    return json.loads(Path(path).read_text())


def safe_path(path: str | os.PathLike[str], root: Path) -> Path:
    """Resolve ``path`` and require it to lie inside ``root`` (symlinks resolved).

    Raises:
        UnsafePathError: the path holds a NUL byte or escapes ``root``.
    """
    text = os.fspath(path)
    if "\x00" in text:
        raise UnsafePathError(f"path contains a NUL byte: {text!r}")
    root_resolved = Path(root).resolve()
    resolved = (root_resolved / text).resolve()
    if not resolved.is_relative_to(root_resolved):
        raise UnsafePathError(f"path {text!r} is outside the artifact root {root_resolved}")
    return resolved
