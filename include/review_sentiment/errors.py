"""Errors that mean "the input is wrong" rather than "something is down".

The DAG maps these to an immediate failure with no retries; anything else is
treated as transient and retried.
"""

from __future__ import annotations


class PipelineError(Exception):
    """Base class for failures that retrying cannot fix."""


class DataContractError(PipelineError):
    """The input violates the data contract; lists every violation at once."""

    def __init__(self, violations: list[str], source: str = "input") -> None:
        self.violations = list(violations)
        self.source = source
        joined = "; ".join(self.violations)
        super().__init__(f"data contract violated by {source} ({len(self.violations)}): {joined}")


class UnsafePathError(PipelineError):
    """A path from configuration or XCom points outside the allowed root."""


class GateRefused(PipelineError):
    """The candidate model did not pass the promotion gate."""


class GridError(PipelineError, ValueError):
    """A grid or grid point that cannot be trained: unknown keys, values out of bounds."""


class ConfigError(PipelineError, ValueError):
    """A run's configuration names something that does not exist, e.g. an unknown conf key."""
