"""The smoke check against a real MLflow server (PostgreSQL backend) and the promotion lock on a
real PostgreSQL: each version is loaded by its ``models:/`` URI in a fresh process.

Versions are the toy pyfunc (tests/support/toy_model.py, as in test_rollback_on_servers.py): v1 is
the champion; v2 a sound candidate whose test sample was scored and stored as ``register`` does
it (``smoke.record_sample``); v3 the same model with a stored sample its scores disagree with; v4
a model that scores NaN, with no sample. The week's way is the package's routing rule, and the
champion is kept or moved through ``register.keep_champion`` / ``register.promote``, as the DAG's
tasks call them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pandas as pd
import pytest

from review_sentiment import names, scoring, smoke, task_ids
from review_sentiment.config import CHAMPION_ALIAS, Settings
from review_sentiment.decision import RegisterResult
from review_sentiment.register import keep_champion, promote
from review_sentiment.routing import route
from tests.support.servers import MlflowServer, PostgresServer
from tests.support.toy_model import register_toy_version

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MODEL = "customer-sentiment-analysis-smoke"
# The test split's stand-in: reviews the toy model scores anywhere between its extremes.
TEST = pd.DataFrame(
    {
        "review_text": [
            "Love the color, great fit", "Cheap fabric, I will return it", "Nice enough", "",
            "Perfect and comfortable but itchy", "Poor stitching, a disappointment", "Flattering!",
        ],
        "title": ["Great", None, "Ok", "", "Mixed", "No", "Yes"],
    }
)  # fmt: skip


def _store_sample(client: Any, version: str, shift: float = 0.0) -> None:
    """Score TEST with the version's logged model (as register scores the test split) and store
    the sample (its scores moved by ``shift``) on its run, through register's own call."""
    registered = client.get_model_version(MODEL, version)
    probability = scoring.score(f"models:/{MODEL}/{version}", TEST) + shift
    smoke.record_sample(client, registered.run_id, TEST, probability)


@pytest.fixture(scope="module")
def world(postgres: PostgresServer, mlflow_server: MlflowServer, tmp_path_factory: pytest.TempPathFactory):
    from mlflow import MlflowClient

    url = mlflow_server.url
    env = {
        "MLFLOW_TRACKING_URI": url,
        "SENTIMENT_MODEL_NAME": MODEL,
        "SENTIMENT_LOCK_URI": postgres.url(),
        "SENTIMENT_ARTIFACT_ROOT": str(tmp_path_factory.mktemp("smoke-artifacts")),
    }
    client = MlflowClient(url, url)
    made = [register_toy_version(url, MODEL, bias=0.0)]  # v1, the champion
    made += [register_toy_version(url, MODEL, bias=b, champion=False) for b in (0.1, 0.1, float("nan"))]
    assert made == ["1", "2", "3", "4"]
    _store_sample(client, "2")
    _store_sample(client, "3", shift=1e-4)
    return {
        "settings": Settings.from_env({**os.environ, **env}),
        "client": client,
        "env": {**os.environ, **env},
    }


def _week(version: str) -> RegisterResult:
    """What register decided for ``version``: the gate passed it against champion v1."""
    return RegisterResult(MODEL, version, run_id="-", promoted=False, reason=f"v{version} no worse than v1",
                          passed=True, champion_version="1")  # fmt: skip


def _champion(world: dict[str, Any]) -> str:
    return str(world["client"].get_model_version_by_alias(MODEL, CHAMPION_ALIAS).version)


def test_a_sound_version_passes_and_is_promoted(world) -> None:
    checked = smoke.check_week(_week("2").to_dict(), forced=False, settings=world["settings"])
    assert checked.passed, checked.failures
    assert 0 < checked.seconds_per_1000 < 5
    tags = world["client"].get_model_version(MODEL, "2").tags
    assert (tags[names.TAG_SMOKE_PASSED], tags[names.TAG_SMOKE_REASON]) == ("true", checked.reason)
    way = route(_week("2").to_dict(), checked.to_dict(), forced=False, require_approval=False)
    assert way.way == task_ids.GATE_PASSED
    promoted = promote(_week("2"), "unused-manifest", settings=world["settings"], pipeline_run_id="smoke/w2")
    assert promoted.outcome == names.OUTCOME_PROMOTED
    assert _champion(world) == "2"


def test_a_version_whose_scores_disagree_with_registers_fails_and_the_champion_stays(world) -> None:
    """Even a forced week: the version does not score what register scored, so it is kept out,
    recorded as smoke_failed on the version, and the alias does not move."""
    week = _week("3").to_dict()
    checked = smoke.check_week(week, forced=True, settings=world["settings"])
    assert not checked.passed
    (failure,) = checked.failures
    assert failure.startswith(
        f"test sample: {len(TEST)} of {len(TEST)} scores differ from register's by up to 0.0001"
    )
    way = route(week, checked.to_dict(), forced=True, require_approval=True)
    assert (way.way, way.outcome) == (task_ids.SMOKE_FAILED, names.OUTCOME_SMOKE_FAILED)
    before = _champion(world)
    kept = keep_champion(_week("3"), settings=world["settings"], reason=way.reason, outcome=way.outcome)
    assert (kept.outcome, kept.promoted) == ("smoke_failed", False)
    assert _champion(world) == before == "2"
    tags = world["client"].get_model_version(MODEL, "3").tags
    assert tags[names.TAG_OUTCOME] == "smoke_failed"
    assert tags[names.TAG_OUTCOME_REASON] == f"smoke check failed: {failure}"
    assert tags[names.TAG_SMOKE_PASSED] == "false"
    assert "ledger.champion_since" not in tags  # never champion: no ledger entry moved to it


def test_a_broken_model_fails_from_the_shell(world) -> None:
    """``python -m review_sentiment.smoke --version 4``, as a user would run it: a model that
    answers NaN fails every score check, and the missing sample is named; exit code 1."""
    argv = [sys.executable, "-m", "review_sentiment.smoke", "--version", "4"]
    done = subprocess.run(argv, env=world["env"], capture_output=True, text=True, timeout=900)
    assert done.returncode == 1, done.stderr[-3000:]
    result = json.loads(done.stdout[done.stdout.index("{") :])
    assert (result["version"], result["status"], result["passed"]) == ("4", "failed", False)
    failures = result["failures"]
    assert "praise_dress: probability not finite (nan)" in failures
    assert "one_megabyte: probability not finite (nan)" in failures
    assert failures[-1] == "no test sample stored with the version's run (smoke/test_sample.json)"
    assert world["client"].get_model_version(MODEL, "4").tags[names.TAG_SMOKE_PASSED] == "false"
    assert _champion(world) == "2"
