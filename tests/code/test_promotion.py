"""The promotion lock: both backends, contended by real processes.

A holder process takes the lock and keeps it until its stdin closes; the tests check that a
second process waits for it, that the wait is bounded, and that a SIGKILLed holder frees it.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from review_sentiment.config import Settings
from review_sentiment.errors import PipelineError
from review_sentiment.promotion import PromotionLockTimeout, lock_key, promotion_lock
from tests.support.servers import PostgresServer

HOLDER = """
import sys, time
from review_sentiment.promotion import promotion_lock
model, uri, timeout = sys.argv[1], sys.argv[2], float(sys.argv[3])
started = time.monotonic()
with promotion_lock(model, lock_uri=uri, timeout=timeout):
    print(f"locked {time.monotonic() - started:.3f}", flush=True)
    sys.stdin.read()  # hold until the test closes our stdin (or kills us)
print("released", flush=True)
"""


class Holder:
    """A process that takes the promotion lock and holds it until released or killed."""

    def __init__(self, model: str, uri: str, timeout: float = 60) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", HOLDER, model, uri, str(timeout)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def line(self, timeout: float) -> str | None:
        """The next line of output, or None if there is none within ``timeout`` seconds."""
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        return self.process.stdout.readline().strip() if ready else None

    def wait_locked(self, timeout: float = 60) -> float:
        """Seconds the holder waited for the lock, once it has it."""
        line = self.line(timeout)
        assert (line or "").startswith("locked"), f"no lock within {timeout}s: {line!r} {self._stderr()}"
        return float(line.split()[1])

    def release(self) -> None:
        self.process.stdin.close()
        assert self.line(30) == "released"
        assert self.process.wait(30) == 0

    def kill(self) -> None:
        self.process.kill()  # SIGKILL, by pid: no finally block, no unlock
        self.process.wait(30)

    def _stderr(self) -> str:
        if self.process.poll() is None:
            return ""
        return self.process.stderr.read()[-2000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.kill()
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if not stream.closed:
                stream.close()


@pytest.fixture
def holders() -> Iterator[list[Holder]]:
    started: list[Holder] = []
    yield started
    for holder in started:
        holder.stop()


def _contend(uri: str, holders: list[Holder], model: str) -> None:
    """The shared scenario: a second process waits while the first holds, and gets the lock after."""
    first = Holder(model, uri)
    holders.append(first)
    first.wait_locked()
    second = Holder(model, uri)
    holders.append(second)
    assert second.line(3) is None, "the second process got the lock while the first held it"
    held_since = time.monotonic()
    first.release()
    waited = second.wait_locked(30)
    assert waited >= 2, waited  # its wait began after its own start-up, within the 3 s above
    assert time.monotonic() - held_since < 10
    second.release()


def _killed_holder_frees_the_lock(uri: str, holders: list[Holder], model: str) -> float:
    first = Holder(model, uri)
    holders.append(first)
    first.wait_locked()
    second = Holder(model, uri)
    holders.append(second)
    assert second.line(2) is None
    killed_at = time.monotonic()
    first.kill()
    second.wait_locked(30)
    recovered = time.monotonic() - killed_at
    second.release()
    return recovered


def test_lock_key_is_a_stable_signed_64_bit_integer() -> None:
    key = lock_key("customer-sentiment-analysis")
    assert -(2**63) <= key < 2**63
    assert key != lock_key("customer-sentiment-analysis-dag")
    # The same in another process with another hash seed (Python's hash() would differ).
    other = subprocess.run(
        [sys.executable, "-c", "from review_sentiment.promotion import lock_key; "
         "print(lock_key('customer-sentiment-analysis'))"],
        env={**os.environ, "PYTHONHASHSEED": "12345"}, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert int(other.stdout) == key


def test_timeout_is_a_pipeline_error() -> None:
    assert issubclass(PromotionLockTimeout, PipelineError)


# --- the file backend ---------------------------------------------------------------------------
def test_file_lock_second_process_waits(tmp_path: Path, holders: list[Holder]) -> None:
    _contend(str(tmp_path / "model.lock"), holders, "m")


def test_file_lock_wait_is_bounded(tmp_path: Path, holders: list[Holder]) -> None:
    uri = str(tmp_path / "model.lock")
    first = Holder("m", uri)
    holders.append(first)
    first.wait_locked()
    started = time.monotonic()
    with (
        pytest.raises(PromotionLockTimeout, match=r"model\.lock"),
        promotion_lock("m", lock_uri=uri, timeout=1),
    ):
        pytest.fail("the body ran without the lock")
    assert 1 <= time.monotonic() - started < 5


def test_file_lock_freed_when_its_holder_is_killed(tmp_path: Path, holders: list[Holder]) -> None:
    assert _killed_holder_frees_the_lock(str(tmp_path / "model.lock"), holders, "m") < 5


def test_file_lock_default_path_is_under_the_artifact_root(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {"SENTIMENT_ARTIFACT_ROOT": str(tmp_path), "SENTIMENT_MODEL_NAME": "some-model"}
    )
    with promotion_lock("some-model", lock_uri=settings.lock_target()):
        assert (tmp_path / "locks" / "some-model.lock").is_file()


# --- the PostgreSQL backend (a real server) -----------------------------------------------------
@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    server = PostgresServer().init().start()
    try:
        yield server
    finally:
        server.cleanup()


def _advisory_locks(server: PostgresServer) -> list[tuple[int, bool]]:
    """(pid, granted) of every advisory lock on the server."""
    import psycopg2

    conn = psycopg2.connect(server.url())
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pid, granted FROM pg_locks WHERE locktype = 'advisory'")
            return cur.fetchall()
    finally:
        conn.close()


@pytest.mark.slow
@pytest.mark.integration
def test_advisory_lock_second_process_waits(postgres: PostgresServer, holders: list[Holder]) -> None:
    _contend(postgres.url(), holders, "contended-model")
    assert _advisory_locks(postgres) == []


@pytest.mark.slow
@pytest.mark.integration
def test_advisory_lock_is_held_in_the_database_and_freed_after(
    postgres: PostgresServer, holders: list[Holder]
) -> None:
    holder = Holder("visible-model", postgres.url("postgres", "postgresql+psycopg2"))
    holders.append(holder)
    holder.wait_locked()
    assert [granted for _, granted in _advisory_locks(postgres)] == [True]
    # Another model's promotion is not held up.
    with promotion_lock("another-model", lock_uri=postgres.url(), timeout=2):
        assert len(_advisory_locks(postgres)) == 2
    holder.release()
    assert _advisory_locks(postgres) == []


@pytest.mark.slow
@pytest.mark.integration
def test_advisory_lock_wait_is_bounded(postgres: PostgresServer, holders: list[Holder]) -> None:
    holder = Holder("busy-model", postgres.url())
    holders.append(holder)
    holder.wait_locked()
    started = time.monotonic()
    with (
        pytest.raises(PromotionLockTimeout, match="advisory lock"),
        promotion_lock("busy-model", lock_uri=postgres.url(), timeout=1.5),
    ):
        pytest.fail("the body ran without the lock")
    assert 1.5 <= time.monotonic() - started < 5
    holder.release()


@pytest.mark.slow
@pytest.mark.integration
def test_advisory_lock_freed_when_its_holder_is_killed(
    postgres: PostgresServer, holders: list[Holder]
) -> None:
    recovered = _killed_holder_frees_the_lock(postgres.url(), holders, "killed-model")
    # The kernel closes the killed process's socket, the server ends its session and the lock.
    assert recovered < 5
    assert _advisory_locks(postgres) == []


@pytest.mark.slow
@pytest.mark.integration
def test_advisory_lock_released_when_the_body_raises(postgres: PostgresServer) -> None:
    with pytest.raises(ValueError, match="gate"), promotion_lock("raising-model", lock_uri=postgres.url()):
        raise ValueError("gate")
    assert _advisory_locks(postgres) == []


@pytest.mark.slow
@pytest.mark.integration
def test_the_settings_lock_uri_selects_the_advisory_lock(postgres: PostgresServer) -> None:
    settings = Settings.from_env({"SENTIMENT_LOCK_URI": postgres.url(), "SENTIMENT_LOCK_TIMEOUT": "2"})
    with promotion_lock("env-model", lock_uri=settings.lock_target(), timeout=settings.lock_timeout_s):
        assert len(_advisory_locks(postgres)) == 1
