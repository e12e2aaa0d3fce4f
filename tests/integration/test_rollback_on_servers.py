"""The champion ledger and rollback against a real PostgreSQL (the promotion lock) and MLflow server.

Versions are the toy pyfunc (tests/support/toy_model.py), their gate tags written directly: v1 and
v2 passed the gate, v3 never did, v4 is forced. v1 and v2 are promoted through ``register.promote``
(so the ledger is written by the real path), then rolled back from a shell as a user would.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import threading
from typing import Any

import pytest

from review_sentiment import ledger
from review_sentiment.config import CHAMPION_ALIAS, Settings
from review_sentiment.decision import RegisterResult
from review_sentiment.register import promote
from review_sentiment.rollback import RollbackRefused, rollback
from tests.support.servers import MlflowServer, PostgresServer
from tests.support.toy_model import register_toy_version

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MODEL = "customer-sentiment-analysis-rollback"


@pytest.fixture(scope="module")
def world(postgres: PostgresServer, mlflow_server: MlflowServer, tmp_path_factory: pytest.TempPathFactory):
    """Four versions; v1 then v2 promoted through register.promote (v2 approved by alice)."""
    from mlflow import MlflowClient

    url = mlflow_server.url
    env = {
        "MLFLOW_TRACKING_URI": url,
        "SENTIMENT_MODEL_NAME": MODEL,
        "SENTIMENT_LOCK_URI": postgres.url(),
        "SENTIMENT_ARTIFACT_ROOT": str(tmp_path_factory.mktemp("rollback-artifacts")),
    }
    settings = Settings.from_env({**os.environ, **env})
    client = MlflowClient(url, url)
    made = [register_toy_version(url, MODEL, bias=b, champion=False) for b in (0.0, 0.1, 0.2, 0.3)]
    assert made == ["1", "2", "3", "4"]
    for version, decision in zip(made, ("passed", "passed", "refused", "refused"), strict=True):
        client.set_model_version_tag(MODEL, version, "gate.decision", decision)
    client.set_model_version_tag(MODEL, "4", "gate.forced", "true")
    promote(_result("1", None), "unused-manifest", settings=settings, pipeline_run_id="sentiment_retrain/w1")
    promote(_result("2", "1"), "unused-manifest", settings=settings, pipeline_run_id="sentiment_retrain/w2",
            approved_by="alice")  # fmt: skip
    return {"settings": settings, "client": client, "env": {**os.environ, **env}}


def _result(version: str, champion: str | None) -> RegisterResult:
    """What register passed for ``version``, compared with ``champion`` (the manifest is read
    only when the champion moved since that comparison, which these tests never do)."""
    return RegisterResult(MODEL, version, run_id="-", promoted=False, reason=f"v{version} passed",
                          passed=True, champion_version=champion)  # fmt: skip


def _champion(world: dict[str, Any]) -> str:
    return str(world["client"].get_model_version_by_alias(MODEL, CHAMPION_ALIAS).version)


def _ledger(world: dict[str, Any]) -> list[ledger.Entry]:
    return ledger.read_ledger(world["client"], MODEL)


def _cli(world: dict[str, Any], *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "review_sentiment", *argv], env=world["env"],
                          capture_output=True, text=True, timeout=300)  # fmt: skip


def test_promotions_are_in_the_ledger(world) -> None:
    entries = _ledger(world)
    assert [(e.seq, e.from_version, e.to_version, e.kind) for e in entries] == [
        (1, None, "1", "promoted"),
        (2, "1", "2", "promoted"),
    ]
    assert [e.run for e in entries] == ["sentiment_retrain/w1", "sentiment_retrain/w2"]
    assert (entries[0].by, entries[1].by) == (None, "alice")
    assert entries[1].reason == "v2 passed"
    # A retried promote finds the version promoted: no second entry.
    again = promote(_result("2", "1"), "unused-manifest", settings=world["settings"],
                    pipeline_run_id="sentiment_retrain/w2")  # fmt: skip
    assert again.reused
    assert len(_ledger(world)) == 2
    # On the registered model's page: one tag per entry.
    tags = world["client"].get_registered_model(MODEL).tags
    assert {k for k in tags if k.startswith("ledger.")} == {"ledger.000001", "ledger.000002"}


def test_rollback_from_the_shell_restores_the_previous_champion(world) -> None:
    assert _champion(world) == "2"
    done = _cli(world, "rollback", "--reason", "v2 mislabels every dress")  # --to: the previous champion
    assert done.returncode == 0, done.stderr[-3000:]
    assert "from v2 to v1" in done.stdout
    assert _champion(world) == "1"
    entries = _ledger(world)
    assert [(e.seq, e.from_version, e.to_version, e.kind) for e in entries] == [
        (1, None, "1", "promoted"),
        (2, "1", "2", "promoted"),
        (3, "2", "1", "rollback"),
    ]
    assert (entries[2].run, entries[2].reason) == ("cli", "v2 mislabels every dress")
    assert entries[2].by  # the shell's user
    v1, v2 = (world["client"].get_model_version(MODEL, v) for v in ("1", "2"))
    assert v1.tags["ledger.champion_since"] == entries[2].at
    assert "ledger.champion_until" not in v1.tags  # it holds the alias again
    assert v2.tags["ledger.champion_until"] == entries[2].at
    history = _cli(world, "history")
    assert history.returncode == 0, history.stderr[-3000:]
    lines = history.stdout.strip().splitlines()
    assert [line.split()[0] for line in lines[:3]] == ["#1", "#2", "#3"]
    assert "rollback: v2 -> v1 (cli by" in lines[2]
    assert lines[3] == "champion now: v1"


@pytest.mark.parametrize(
    ("target", "why"), [("99", "version 99 of .* does not exist"), ("3", "never passed a gate")]
)
def test_a_rollback_to_a_missing_or_never_passed_version_is_refused(world, target: str, why: str) -> None:
    before, entries = _champion(world), len(_ledger(world))
    with pytest.raises(RollbackRefused, match=why):
        rollback(target, "try it", settings=world["settings"])
    done = _cli(world, "rollback", "--to", target, "--reason", "try it")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("error: ")
    assert (_champion(world), len(_ledger(world))) == (before, entries)


def test_a_second_identical_rollback_moves_nothing(world) -> None:
    entries = len(_ledger(world))
    same = rollback("1", "v2 mislabels every dress", settings=world["settings"])
    assert (same.outcome, same.ledger_entry) == ("unchanged", None)
    assert "nothing moved" in same.summary()
    assert (_champion(world), len(_ledger(world))) == ("1", entries)
    # A DAG run's cleared task: the first try moved it; the retry reports that move, writes nothing.
    run = "sentiment_rollback/manual__1"
    first = rollback("2", "back to v2", settings=world["settings"], pipeline_run_id=run, by="bob")
    retry = rollback("2", "back to v2", settings=world["settings"], pipeline_run_id=run, by="bob")
    assert (first.outcome, first.reused, first.champion_version) == ("rolled_back", False, "1")
    assert (retry.outcome, retry.reused, retry.ledger_entry) == ("rolled_back", True, first.ledger_entry)
    assert len(_ledger(world)) == entries + 1
    assert _ledger(world)[-1].by == "bob"


def test_racing_rollback_and_promotion_each_leave_exactly_one_entry(world) -> None:
    """A rollback and a forced promotion start together: the lock serialises them, whichever wins."""
    before = _ledger(world)
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def run(call) -> None:
        try:
            start.wait(timeout=60)
            call()
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    settings = world["settings"]

    def roll_back() -> None:
        rollback("1", "race", settings=settings, pipeline_run_id="sentiment_rollback/race")

    def promote_forced() -> None:
        promote(
            _result("4", "2"), "unused-manifest", settings=settings, pipeline_run_id="sentiment_retrain/race"
        )

    racers = [threading.Thread(target=run, args=(call,)) for call in (roll_back, promote_forced)]
    for t in racers:
        t.start()
    for t in racers:
        t.join(timeout=300)
    assert errors == []
    new = _ledger(world)[len(before) :]
    assert sorted(e.run for e in new) == ["sentiment_retrain/race", "sentiment_rollback/race"]
    assert [e.seq for e in new] == [before[-1].seq + 1, before[-1].seq + 2]
    assert {e.kind for e in new} == {"forced", "rollback"}
    # Each move starts where the one before it left the alias; the alias is where the last left it.
    assert new[0].from_version == before[-1].to_version
    assert new[1].from_version == new[0].to_version
    assert _champion(world) == new[1].to_version
    assert dataclasses.asdict(before[0]) == dataclasses.asdict(_ledger(world)[0])  # nothing rewritten
