"""Keep third-party console output out of task logs as errors.

Airflow logs whatever a task writes to stderr at level ERROR. TensorFlow writes notices to the
process's stderr from C++ while it loads (absl's "All log messages before absl::InitializeLog()"
and oneDNN's), and MLflow logs through a stderr handler of its own, draws progress bars and prints
"Successfully registered model" there. None of them is an error: they go to the logging of the
task at their own level (DEBUG or INFO for the prints) instead.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import tempfile
from collections.abc import Iterator

log = logging.getLogger(__name__)


@contextlib.contextmanager
def native_stderr_to_log(level: int = logging.DEBUG) -> Iterator[None]:
    """Send what C/C++ code writes to file descriptor 2 during the ``with`` body to the log."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            for line in sink.read().decode(errors="replace").splitlines():
                if line.strip():
                    log.log(level, "%s", line)


def import_keras() -> None:
    """Import TensorFlow and Keras once per process, their load-time notices logged at DEBUG."""
    if "keras" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with native_stderr_to_log():
        import keras  # noqa: F401 - loaded here so that later imports are silent


@contextlib.contextmanager
def stderr_to_log(level: int = logging.INFO) -> Iterator[None]:
    """Send Python-level stderr writes (MLflow's ``eprint``) during the ``with`` body to the log."""
    buffer = io.StringIO()
    try:
        with contextlib.redirect_stderr(buffer):
            yield
    finally:
        for line in buffer.getvalue().splitlines():
            if line.strip():
                log.log(level, "%s", line)


def quiet_mlflow() -> None:
    """Call before MLflow is imported: its loggers then go through the task's logging at their
    own level (MLflow otherwise installs a handler of its own that writes to stderr, which the
    task log shows as ERROR), and no artifact progress bars (redrawn lines on stderr)."""
    os.environ.setdefault("MLFLOW_CONFIGURE_LOGGING", "false")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
