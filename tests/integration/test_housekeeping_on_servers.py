"""Housekeeping against a real PostgreSQL (the promotion lock) and MLflow server, on an artifact
root that "ran several weeks".

Six toy versions (tests/support/toy_model.py): v1 to v4 passed the gate and were promoted one
after the other through ``register.promote`` (so the ledger is written by the real path); v5 and
v6 were refused. Each names a run folder by its ``pipeline_run_id`` tag; v3 also names an older
snapshot by ``training.snapshot``. Run folders are aged by their modification times, and the pass
runs at ``NOW``, 13 weeks from today, so the versions registered today are old enough to archive.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from review_sentiment import schema
from review_sentiment.cleaning_rules import PreprocessSettings
from review_sentiment.config import CHAMPION_ALIAS, Settings
from review_sentiment.decision import RegisterResult
from review_sentiment.housekeeping import housekeeping
from review_sentiment.housekeeping_plan import Policy
from review_sentiment.preprocess import TextCleaner
from review_sentiment.preprocess_cache import PreprocessCache
from review_sentiment.register import promote
from review_sentiment.rollback import RollbackRefused, rollback
from tests.support.run_folders import fake_run_folder, folder_digest
from tests.support.servers import MlflowServer, PostgresServer
from tests.support.toy_model import register_toy_version, toy_probability

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MODEL = "customer-sentiment-analysis-housekeeping"
NOW = datetime.now(UTC) + timedelta(weeks=13)
POLICY = Policy(keep_weeks=8, challenger_weeks=12, keep_champions=3)
BIAS = {"1": 0.0, "2": 0.1, "3": 0.2, "4": 0.3, "5": -0.1, "6": -0.2}
# Run folder -> age in weeks at NOW. w0: only v3's training.snapshot names it; new: young.
FOLDERS = {f"sentiment_retrain/w{n}": 20 - n for n in range(7)} | {
    "sentiment_retrain/new": 1, "sentiment_score/old": 15, "sentiment_score/new": 0.5,
}  # fmt: skip
KEPT = ["sentiment_retrain/w0", "sentiment_retrain/w2", "sentiment_retrain/w3", "sentiment_retrain/w4",
        "sentiment_retrain/new", "sentiment_score/new"]  # fmt: skip
DELETED = sorted(set(FOLDERS) - set(KEPT))


class Stopped(BaseException):
    """The simulated interruption (a BaseException, as a kill's KeyboardInterrupt or SystemExit)."""


def _result(version: str, champion: str | None) -> RegisterResult:
    return RegisterResult(MODEL, version, run_id="-", promoted=False, reason=f"v{version} passed",
                          passed=True, champion_version=champion)  # fmt: skip


@pytest.fixture(scope="module")
def world(postgres: PostgresServer, mlflow_server: MlflowServer, tmp_path_factory: pytest.TempPathFactory):
    from mlflow import MlflowClient

    url, root = mlflow_server.url, tmp_path_factory.mktemp("housekeeping-artifacts")
    env = {"MLFLOW_TRACKING_URI": url, "SENTIMENT_MODEL_NAME": MODEL, "SENTIMENT_LOCK_URI": postgres.url(),
           "SENTIMENT_ARTIFACT_ROOT": str(root)}  # fmt: skip
    settings = Settings.from_env({**os.environ, **env})
    client = MlflowClient(url, url)
    made = [register_toy_version(url, MODEL, bias=BIAS[str(n)], champion=False) for n in range(1, 7)]
    assert made == ["1", "2", "3", "4", "5", "6"]
    for v in made:
        client.set_model_version_tag(MODEL, v, "gate.decision", "passed" if int(v) <= 4 else "refused")
        client.set_model_version_tag(MODEL, v, "pipeline_run_id", f"sentiment_retrain/w{v}")
    client.set_model_version_tag(
        MODEL, "3", "training.snapshot", "sentiment_retrain/w0/ingest/reviews.parquet"
    )
    for v, before in (("1", None), ("2", "1"), ("3", "2"), ("4", "3")):
        promote(
            _result(v, before),
            "unused-manifest",
            settings=settings,
            pipeline_run_id=f"sentiment_retrain/w{v}",
        )
    for key, age in FOLDERS.items():
        texts = [f"{key} review {i}: love the fabric, runs small" for i in range(40)]
        fake_run_folder(root, key, NOW - timedelta(weeks=age), texts, title="Nice", blob_bytes=200_000)
    cache = PreprocessCache(settings.layout.preprocess_cache, TextCleaner(PreprocessSettings()))
    for key in FOLDERS:
        frame = pd.read_parquet(root / key / "ingest" / "reviews.parquet")
        cache.clean_many(frame[schema.TEXT], frame[schema.TITLE])
    cache.save()
    for other in ("state", "locks"):
        (root / other).mkdir(exist_ok=True)
        (root / other / "keep.txt").write_text("not housekeeping's")
    return {"settings": settings, "client": client, "env": {**os.environ, **env}, "root": root}


def _champion(world: dict[str, Any]) -> str:
    return str(world["client"].get_model_version_by_alias(MODEL, CHAMPION_ALIAS).version)


def _root_digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): folder_digest(p) for p in sorted(root.glob("*/*")) if p.is_dir()}


def test_a_dry_run_prints_the_plan_and_changes_nothing(world) -> None:
    before = _root_digests(world["root"])
    cache_file = next((world["root"] / "cache").rglob("texts.arrow"))
    cache_before = cache_file.read_bytes()
    done = subprocess.run(
        [sys.executable, "-m", "review_sentiment", "housekeeping", "--dry-run", "--keep-weeks", "1"],
        env=world["env"], capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert lines[0] == "kept champions: v4, v3, v2"
    assert any(line.startswith("delete sentiment_retrain/w1 (") for line in lines)
    assert "keep sentiment_retrain/w0: referenced by v3 (a kept champion)" in lines
    assert lines[-1].startswith("dry run: nothing changed")
    assert _root_digests(world["root"]) == before
    assert cache_file.read_bytes() == cache_before
    assert not (world["root"] / "trash").exists()
    assert world["client"].get_experiment_by_name("sentiment-housekeeping") is None  # nothing logged


def test_an_interrupted_pass_then_a_rerun_frees_space_and_keeps_the_champions(world) -> None:
    root, client = world["root"], world["client"]
    kept = {key: folder_digest(root / key) for key in KEPT}
    others = {p: p.read_text() for p in (root / "state" / "keep.txt", root / "locks" / "keep.txt")}
    cache_size = sum(p.stat().st_size for p in (root / "cache").rglob("texts.arrow"))
    steps: list[str] = []

    def stop_midway(done: str) -> None:
        steps.append(done)
        if len(steps) == 4:  # two versions archived, two folders in the trash
            raise Stopped(done)

    with pytest.raises(Stopped):
        housekeeping(world["settings"], POLICY, now=NOW, step=stop_midway)
    assert steps == ["archived v5", "archived v6", "moved sentiment_retrain/w1 to the trash",
                     "moved sentiment_retrain/w5 to the trash"]  # fmt: skip
    assert {p.name for p in (root / "trash" / "sentiment_retrain").iterdir()} == {"w1", "w5"}
    experiment = client.get_experiment_by_name("sentiment-housekeeping")
    (failed,) = client.search_runs([experiment.experiment_id])
    assert failed.info.status == "FAILED"

    report = housekeeping(world["settings"], POLICY, now=NOW)
    assert sorted(k for k in FOLDERS if (root / k).exists()) == sorted(KEPT)
    assert {key: folder_digest(root / key) for key in KEPT} == kept  # nothing kept is lost
    assert {p: p.read_text() for p in others} == others
    assert not list((root / "trash").rglob("*.bin"))
    assert report.folders_deleted == len(DELETED) == 4
    assert report.bytes_freed > 4 * 200_000
    assert report.versions_archived == []  # the first try archived them
    assert report.cache_bytes_freed > 0
    assert report.cache_entries_dropped == len(DELETED) * 40
    assert sum(p.stat().st_size for p in (root / "cache").rglob("texts.arrow")) < cache_size
    assert report.kept_champions == ["4", "3", "2"]
    for v in ("5", "6"):
        archived = client.get_model_version(MODEL, v)
        assert archived.current_stage == "Archived"
        assert "never champion" in archived.tags["housekeeping.archived"]
    assert {client.get_model_version(MODEL, v).current_stage for v in ("1", "2", "3", "4")} == {"None"}
    finished = client.get_run(report.mlflow_run_id)
    assert finished.info.status == "FINISHED"
    assert finished.data.metrics["bytes_freed"] == report.bytes_freed + report.cache_bytes_freed
    assert finished.data.metrics["folders_deleted"] == 4
    # A third pass finds nothing to do.
    again = housekeeping(world["settings"], POLICY, now=NOW)
    assert (again.folders_deleted, again.bytes_freed, again.versions_archived) == (0, 0, [])


def test_every_kept_champion_still_loads_scores_and_can_be_rolled_back_to(world) -> None:
    import mlflow

    reviews = pd.DataFrame({"Review Text": ["Love it, perfect fit", "Cheap fabric, itchy; returning it"]})
    for v in ("4", "3", "2"):
        model = mlflow.pyfunc.load_model(f"models:/{MODEL}/{v}")
        scored = model.predict(reviews)
        assert scored["probability"].tolist() == pytest.approx(
            toy_probability(reviews["Review Text"], BIAS[v]).tolist()
        )
    for v in ("3", "2", "4"):
        done = rollback(v, f"housekeeping test: back to v{v}", settings=world["settings"])
        assert done.outcome == "rolled_back"
        assert _champion(world) == v
    with pytest.raises(RollbackRefused, match="archived"):
        rollback("5", "an archived challenger", settings=world["settings"])
    assert _champion(world) == "4"
