"""Measured figures in the CI log and in a file, and polling with a deadline."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest


def report(config: pytest.Config, line: str, folder: Path) -> None:
    """Write ``line`` to the terminal past output capture (figures belong in the CI log) and
    append it, timestamped, to ``folder``/measurements.txt."""
    terminal = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if terminal is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            terminal.write_line(line)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "measurements.txt", "a") as out:
        out.write(f"{datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ} {line}\n")


def wait_until(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.5) -> Any:
    """Poll ``check`` until it returns something truthy, and return that; fail on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
