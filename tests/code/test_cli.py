"""The shell entry point, run as a user runs it: ``python -m review_sentiment <stage>``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from review_sentiment.config import PROJECT_ROOT
from review_sentiment.synthetic import write_synthetic_csv

STAGES = ["ingest", "load-table", "synthesize", "preprocess", "tokenize", "train", "register", "champion"]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """The caller's environment with every output redirected into ``tmp_path``."""
    return {
        **os.environ,
        "SENTIMENT_ARTIFACT_ROOT": str(tmp_path / "artifacts"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # sys.executable is the venv's python when the suite runs as `.venv/bin/python -m pytest`.
    return subprocess.run(
        [sys.executable, "-m", "review_sentiment", *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


def test_top_level_help_lists_every_stage(env: dict[str, str]) -> None:
    done = cli("--help", env=env)
    assert done.returncode == 0, done.stderr
    for stage in STAGES:
        assert stage in done.stdout


@pytest.mark.parametrize("stage", STAGES)
def test_every_stage_has_help(stage: str, env: dict[str, str]) -> None:
    done = cli(stage, "--help", env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"usage: python -m review_sentiment {stage}")


def test_unknown_stage_is_a_usage_error(env: dict[str, str]) -> None:
    done = cli("deploy", env=env)
    assert done.returncode == 2
    assert "invalid choice: 'deploy'" in done.stderr


def test_ingest_of_a_bad_file_exits_2_with_one_line(tmp_path: Path, env: dict[str, str]) -> None:
    bad = write_synthetic_csv(tmp_path / "bad.csv", n=300)
    lines = bad.read_text().splitlines(keepends=True)
    lines[10] = lines[10].replace(",Synthetic,", ",Synthetic,extra,")  # a row with 12 fields
    bad.write_text("".join(lines))
    out = tmp_path / "out"
    done = cli("ingest", "--source", str(bad), "--output", str(out), env=env)
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"error: data contract violated by {bad}")
    assert "Expected 11 fields" in lines[0]
    assert not out.exists()


def test_ingest_of_a_missing_file_exits_2(tmp_path: Path, env: dict[str, str]) -> None:
    done = cli("ingest", "--source", str(tmp_path / "nope.csv"), "--output", str(tmp_path / "o"), env=env)
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: data contract violated by {tmp_path / 'nope.csv'} (1): " + (
        f"file not found: {tmp_path / 'nope.csv'}"
    )


def test_stages_print_what_they_produced_last(tmp_path: Path, env: dict[str, str]) -> None:
    done = cli("synthesize", "--rows", "400", "--output", str(tmp_path / "syn"), env=env)
    assert done.returncode == 0, done.stderr
    source = Path(last_line(done.stdout))
    assert source == tmp_path / "syn" / "synthetic_reviews.csv"
    assert source.is_file()

    done = cli("ingest", "--source", str(source), "--output", str(tmp_path / "ingest"), env=env)
    assert done.returncode == 0, done.stderr
    snapshot = Path(last_line(done.stdout))
    assert snapshot == tmp_path / "ingest" / "reviews.parquet"
    assert snapshot.is_file()
    report = json.loads((snapshot.parent / "ingest.json").read_text())
    assert report["rows_in"] == 400
    assert report["rows_out"] + report["dropped_no_text"] == 400

    done = cli(
        "preprocess", "--input", str(snapshot), "--keep-negations", "--output", str(tmp_path / "pre"), env=env
    )
    assert done.returncode == 0, done.stderr
    cleaned = Path(last_line(done.stdout))
    assert cleaned == tmp_path / "pre" / "reviews_clean.parquet"
    assert cleaned.is_file()
    assert json.loads((cleaned.parent / "preprocess.json").read_text())["keep_negations"] is True


def test_train_with_a_bad_grid_exits_2_before_training(tmp_path: Path, env: dict[str, str]) -> None:
    grid = json.dumps([{"name": "p", "embedding_dim": "64"}])
    done = cli(
        "train",
        "--input",
        str(tmp_path / "manifest.json"),
        "--grid",
        grid,
        "--output",
        str(tmp_path),
        env=env,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        "error: grid point 'p': embedding_dim must be an integer, got '64'"
    )
    assert not (tmp_path / "runs.json").exists()


def test_preprocess_switches_go_both_ways_with_the_dags_defaults(env: dict[str, str]) -> None:
    """Each preprocessing switch has an on and an off flag; with neither, the package's (and the
    DAG's) default applies, and --help says which."""
    done = cli("preprocess", "--help", env=env)
    assert done.returncode == 0, done.stderr
    text = " ".join(done.stdout.split())
    for flag in ("keep-negations", "use-title", "remove-stopwords"):
        assert f"--{flag}, --no-{flag}" in text
    assert "--keep-stopwords" not in text
    assert "keep no/nor/not and the n't forms (default: True)" in text
    assert "prepend the review title to its text (default: True)" in text
    assert "drop NLTK's English stopwords (default: False)" in text


def test_register_takes_the_snapshot_its_drift_check_reads() -> None:
    from review_sentiment.cli import parser

    argv = ["register", "--input", "m.json", "--runs", "a,b", "--output", "out"]
    assert parser().parse_args([*argv, "--snapshot", "ingest/reviews.parquet"]).snapshot == Path(
        "ingest/reviews.parquet"
    )
    assert parser().parse_args(argv).snapshot is None  # no drift check, no training.snapshot tag
