"""One truth for the defaults: the DAGs' params, the CLI's flags and the package agree, so
``python -m review_sentiment preprocess`` (then ``tokenize``) with no flags builds what a default
DAG run builds. The DAGs are parsed as the scheduler parses them (DagBag); the model inputs are
built twice from one small review file, once by the CLI and once by the DAG's own task bodies with
the DAG's param defaults, and the tokenize manifests (and what they name) are compared."""

from __future__ import annotations

import json
from dataclasses import fields
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from review_sentiment import cli, config, task_ids
from review_sentiment.cleaning_rules import PreprocessSettings
from review_sentiment.model import GridPoint
from review_sentiment.synthetic import write_synthetic_csv

DAGS = config.PROJECT_ROOT / "dags"


@pytest.fixture(scope="module")
def dags() -> dict[str, Any]:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS))
    assert bag.import_errors == {}
    return bag.dags


def defaults(dag: Any) -> dict[str, Any]:
    """The params a trigger without conf runs with."""
    return {key: dag.params[key] for key in dag.params}


def cli_args(*argv: str) -> Any:
    return cli.parser().parse_args(list(argv))


def test_the_cli_and_the_dag_default_to_the_package_preprocess_settings(dags: dict[str, Any]) -> None:
    import sentiment_retrain

    params = defaults(dags[config.RETRAIN_DAG_ID])
    # As the DAG's preprocess task builds them, and as the CLI builds them from no flags.
    from_dag = PreprocessSettings(**{k: params[k] for k in sentiment_retrain.PREPROCESS_PARAMS})
    from_cli = cli.preprocess_settings(cli_args("preprocess", "--input", "in.parquet", "--output", "out"))
    assert from_dag == from_cli == PreprocessSettings()
    assert set(cli.PREPROCESS_SWITCHES) == set(sentiment_retrain.PREPROCESS_PARAMS)
    # Each switch can be turned either way from the shell.
    flipped = cli_args("preprocess", "--input", "i", "--output", "o", "--no-use-title", "--remove-stopwords")
    assert (flipped.use_title, flipped.remove_stopwords) == (False, True)


def test_epoch_limits_come_from_the_grid_point(dags: dict[str, Any]) -> None:
    params = dags[config.RETRAIN_DAG_ID].params
    point = {f.name: f for f in fields(GridPoint)}
    for key in ("max_epochs", "patience"):
        bound = point[key].metadata["bound"]
        assert params[key] == point[key].default
        schema = params.get_param(key).schema
        assert (schema["type"], schema["minimum"], schema["maximum"]) == (
            "integer",
            bound.minimum,
            bound.maximum,
        )


def test_connection_ids_scoring_sizes_and_floor_are_the_config_constants(dags: dict[str, Any]) -> None:
    retrain = defaults(dags[config.RETRAIN_DAG_ID])
    score = defaults(dags[config.SCORE_DAG_ID])
    assert retrain["source_conn_id"] == score["source_conn_id"] == config.DEFAULT_REVIEWS_CONN_ID
    assert score["predictions_conn_id"] == config.DEFAULT_REVIEWS_CONN_ID
    assert score["chunk_rows"] == config.DEFAULT_SCORE_CHUNK_ROWS
    assert cli_args("score", "--output", "o").chunk_rows == config.DEFAULT_SCORE_CHUNK_ROWS
    assert score["rescore_days"] == config.DEFAULT_RESCORE_DAYS
    assert retrain["promotion_floor"] == config.DEFAULT_PROMOTION_FLOOR
    assert (
        cli_args("register", "--input", "m", "--runs", "r", "--output", "o").floor
        == retrain["promotion_floor"]
    )
    register_args = cli_args("register", "--input", "m", "--runs", "r", "--output", "o")
    assert retrain["noninferiority_margin"] == config.DEFAULT_NONINFERIORITY_MARGIN == register_args.margin
    assert (retrain["monitoring_floor"], retrain["monitoring_margin"]) == (
        config.DEFAULT_MONITOR_FLOOR,
        config.DEFAULT_MONITOR_MARGIN,
    )


def test_every_task_id_is_declared_once(dags: dict[str, Any]) -> None:
    declared = {v for k, v in vars(task_ids).items() if k.isupper() and isinstance(v, str)}
    found = {t.task_id for dag in dags.values() for t in dag.tasks}
    assert found == declared


def run_dag_task(dag: Any, task_id: str, source: Path, monkeypatch: pytest.MonkeyPatch, *args: Any) -> Any:
    """Call a task's body as Airflow's runner does, in a run triggered with no conf: the params
    are the DAG's defaults (``source`` aside: the test's file)."""
    import sentiment_stage

    params = {**defaults(dag), "source": str(source)}
    context = {
        "ti": SimpleNamespace(dag_id=dag.dag_id, run_id="manual__defaults", task_id=task_id, map_index=-1),
        "dag_run": SimpleNamespace(run_after=datetime(2026, 11, 30, 3, tzinfo=UTC), conf={}),
        "params": params,
        "dag": SimpleNamespace(params=dag.params),
    }
    monkeypatch.setattr(sentiment_stage, "get_current_context", lambda: context)
    return dag.get_task(task_id).python_callable(*args)


def cli_product(capsys: pytest.CaptureFixture[str], *argv: str) -> Path:
    assert cli.main(list(argv)) == 0
    return Path(capsys.readouterr().out.strip().splitlines()[-1])


def test_the_cli_with_no_flags_builds_the_dags_model_inputs(
    dags: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    source = write_synthetic_csv(tmp_path / "data" / "reviews.csv", n=400, seed=3)
    monkeypatch.setenv("SENTIMENT_ARTIFACT_ROOT", str(tmp_path / "artifacts"))
    monkeypatch.setenv("SENTIMENT_DATA_ROOTS", str(source.parent))
    dag = dags[config.RETRAIN_DAG_ID]

    ingested = run_dag_task(dag, task_ids.INGEST, source, monkeypatch)
    cleaned = run_dag_task(dag, task_ids.PREPROCESS, source, monkeypatch, ingested["snapshot"])
    from_dag = Path(run_dag_task(dag, task_ids.TOKENIZE, source, monkeypatch, cleaned))

    shell = tmp_path / "shell"
    snapshot = cli_product(capsys, "ingest", "--source", str(source), "--output", str(shell / "ingest"))
    cleaned = cli_product(
        capsys, "preprocess", "--input", str(snapshot), "--output", str(shell / "preprocess")
    )
    from_cli = cli_product(capsys, "tokenize", "--input", str(cleaned), "--output", str(shell / "tokenize"))

    assert from_dag.parent != from_cli.parent
    manifest = json.loads(from_cli.read_text())
    assert json.loads(from_dag.read_text()) == manifest  # names relative to its folder: no paths
    assert manifest["rows_in"] > 300
    for name in (manifest["preprocess_settings"], manifest["vocabulary"], manifest["ngrams"]):
        assert json.loads((from_dag.parent / name).read_text()) == json.loads(
            (from_cli.parent / name).read_text()
        )
    settings = json.loads((from_cli.parent / manifest["preprocess_settings"]).read_text())
    assert {k: settings[k] for k in cli.PREPROCESS_SWITCHES} == {
        k: getattr(PreprocessSettings(), k) for k in cli.PREPROCESS_SWITCHES
    }
    for split in manifest["splits"].values():
        for name in (split["x"], split["y"]):
            assert (from_dag.parent / name).read_bytes() == (from_cli.parent / name).read_bytes(), name
