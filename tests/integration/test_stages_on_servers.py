"""The stages end to end against a real PostgreSQL source and a real MLflow server.

Runs on a sample of the real review file: load it into a table, ingest from the table,
preprocess, tokenize, train a small grid, register, then check the gate, idempotency and
that the champion scores raw text in a fresh process and behind ``mlflow models serve``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from review_sentiment.cleaning_rules import PreprocessSettings
from review_sentiment.config import CHAMPION_ALIAS, Settings
from review_sentiment.gate import GatePolicy
from review_sentiment.ingest import ingest
from review_sentiment.model import GridPoint
from review_sentiment.preprocess import preprocess
from review_sentiment.register import register
from review_sentiment.reviews_db import load_table
from review_sentiment.tokenize import tokenize
from review_sentiment.tracking import ensure_experiment
from review_sentiment.train import train
from tests.support.servers import MlflowServer, PostgresServer, free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MODEL = "customer-sentiment-analysis-stages"
GOOD = {"name": "good", "embedding_dim": 32, "batch_size": 64, "max_epochs": 8, "learning_rate": 0.01}
BAD = {"name": "bad", "embedding_dim": 2, "batch_size": 512, "max_epochs": 1, "learning_rate": 1e-5}


def real_reviews() -> Path:
    path = Settings.from_env().reviews_path
    if not path.is_file():
        if os.environ.get("CI") == "true":
            pytest.fail(f"the real review file is missing at {path} (it ships under data/)")
        pytest.skip(f"real review file not at {path}")
    return path


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory, postgres: PostgresServer, mlflow_server: MlflowServer):
    """Run every stage once; yield what the tests need."""
    out = tmp_path_factory.mktemp("stages")
    # Not "reviews": tests/integration/test_reviews_db.py makes that database on the same server.
    source = postgres.create_database("stages_reviews") + "?table=public.reviews"
    first_load = datetime(2026, 11, 2, tzinfo=UTC)
    loaded = load_table(real_reviews(), source, ingested_at=first_load)
    reloaded = load_table(real_reviews(), source, ingested_at=first_load + timedelta(days=7))

    snapshot = ingest(
        source, out / "ingest", sample_fraction=0.3, start=first_load, end=first_load + timedelta(days=1)
    )
    cleaned = preprocess(snapshot, out / "preprocess", PreprocessSettings.notebook(keep_negations=True))
    manifest = tokenize(cleaned, out / "tokenize")
    experiment = ensure_experiment("stages-integration", mlflow_server.url)
    good_run = train(manifest, GOOD, experiment_id=experiment, tracking_uri=mlflow_server.url)
    bad_run = train(manifest, BAD, experiment_id=experiment, tracking_uri=mlflow_server.url)
    first = register(
        [good_run, bad_run],
        manifest,
        settings=_settings(mlflow_server.url, out),  # the snapshot is tagged relative to ``out``
        policy=GatePolicy(floor=0.8),
        snapshot_path=snapshot,
        pipeline_run_id="week-1",
    )
    return {
        "source": source,
        "loaded": loaded,
        "reloaded": reloaded,
        "snapshot": snapshot,
        "manifest": manifest,
        "good_run": good_run,
        "bad_run": bad_run,
        "first": first,
        "url": mlflow_server.url,
        "root": out,
    }


def _settings(url: str, artifact_root: Path | None = None) -> Settings:
    """The environment's settings on this test's MLflow server and model (and artifact root)."""
    settings = dataclasses.replace(Settings.from_env(), tracking_uri=url, model_name=MODEL)
    return dataclasses.replace(settings, artifact_root=artifact_root) if artifact_root else settings


def _versions(url: str) -> list:
    from mlflow import MlflowClient

    return MlflowClient(url, url).search_model_versions(f"name = '{MODEL}'")


def test_table_load_is_an_idempotent_upsert(pipeline) -> None:
    assert pipeline["loaded"] == 21186
    assert pipeline["reloaded"] == 0  # same rows again: nothing changes, ingested_at untouched


def test_ingest_reads_only_the_requested_interval(pipeline, tmp_path: Path) -> None:
    from review_sentiment.errors import DataContractError

    with pytest.raises(DataContractError, match="no rows in the requested interval"):
        ingest(pipeline["source"], tmp_path, start=datetime(2026, 11, 3, tzinfo=UTC))
    assert not list(tmp_path.iterdir())


def test_best_run_becomes_champion(pipeline, tmp_path: Path) -> None:
    from mlflow import MlflowClient

    first = pipeline["first"]
    assert first.promoted, first.reason
    assert first.run_id == pipeline["good_run"]
    assert first.candidate["roc_auc"] > 0.85
    client = MlflowClient(pipeline["url"], pipeline["url"])
    champion = client.get_model_version_by_alias(MODEL, CHAMPION_ALIAS)
    assert champion.version == first.version
    assert champion.tags["gate.decision"] == "passed"
    assert champion.tags["outcome"] == "promoted"
    # The snapshot it was trained on, for the next weeks' drift checks; nothing to check it against.
    assert champion.tags["training.snapshot"] == "ingest/reviews.parquet"
    assert champion.tags["drift.reason"] == "no drift check: there is no champion to compare with"
    assert "gate.drift" not in champion.tags
    # What it was trained and early-stopped on, recorded for the next week's fair comparison.
    seen = json.loads(
        Path(client.download_artifacts(first.run_id, "data/seen_review_ids.json", str(tmp_path))).read_text()
    )
    assert int(champion.tags["training.reviews"]) == len(seen) > 1_000
    test_ids = set(pd.read_parquet(Path(pipeline["manifest"]).parent / "test.parquet")["review_id"])
    assert not test_ids & set(seen)
    assert float(champion.tags["candidate.test_roc_auc"]) == pytest.approx(
        first.candidate["roc_auc"], abs=1e-5
    )
    # The experiment opens in MLflow's model-training view; the grid point reads back as it was.
    experiment = client.get_experiment_by_name("stages-integration")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    run = client.get_run(first.run_id)
    assert GridPoint.from_json(run.data.params["grid_point"]) == GridPoint.from_dict(GOOD)
    # The splits it saw, as dataset inputs with digests.
    inputs = {d.dataset.name: d for d in run.inputs.dataset_inputs}
    assert set(inputs) == {"train", "validation", "test"}
    assert {d.tags[0].value for d in inputs.values()} == {"training", "validation", "testing"}
    assert all(d.dataset.digest for d in inputs.values())


def test_second_register_for_same_run_is_a_no_op(pipeline) -> None:
    before = _versions(pipeline["url"])
    again = register(
        [pipeline["good_run"], pipeline["bad_run"]],
        pipeline["manifest"],
        settings=_settings(pipeline["url"]),
        policy=GatePolicy(floor=0.8),
        pipeline_run_id="week-1",
    )
    assert again.reused
    assert again.version == pipeline["first"].version
    assert len(_versions(pipeline["url"])) == len(before)


def test_gate_refuses_a_worse_candidate(pipeline) -> None:
    from mlflow import MlflowClient

    refused = register(
        [pipeline["bad_run"]],
        pipeline["manifest"],
        settings=_settings(pipeline["url"]),
        policy=GatePolicy(floor=0.8),
        pipeline_run_id="week-2-bad",
    )
    assert not refused.promoted
    assert (refused.passed, refused.outcome) == (False, "kept")
    assert refused.champion is not None
    # The champion saw none of this test split: the whole split is the comparison set.
    assert refused.comparison_size == len(pd.read_parquet(Path(pipeline["manifest"]).parent / "test.parquet"))
    assert refused.compared["roc_auc"] < refused.champion["roc_auc"]
    client = MlflowClient(pipeline["url"], pipeline["url"])
    assert client.get_model_version_by_alias(MODEL, CHAMPION_ALIAS).version == pipeline["first"].version
    refused_version = client.get_model_version(MODEL, refused.version)
    assert refused_version.tags["gate.decision"] == "refused"
    assert refused_version.tags["outcome"] == "kept"
    assert client.get_model_version_by_alias(MODEL, "challenger").version == refused.version
    # The paired bootstrap interval of candidate - champion: tagged, logged on the run, in the result.
    tags, metrics = refused_version.tags, client.get_run(refused.run_id).data.metrics
    low, estimate, high = (float(tags[f"gate.difference_roc_auc{end}"]) for end in ("_low", "", "_high"))
    assert low <= estimate <= high < 0, tags
    assert metrics["test_vs_champion_roc_auc_low"] == pytest.approx(
        refused.difference["roc_auc_low"], abs=1e-6
    )
    assert refused.difference["roc_auc_low"] == pytest.approx(low, abs=1e-6)
    assert float(tags["gate.noninferiority_margin"]) == refused.noninferiority_margin == 0.002


def test_promote_again_is_a_no_op_and_never_moves_champion_back(pipeline) -> None:
    from mlflow import MlflowClient

    from review_sentiment.register import promote

    client = MlflowClient(pipeline["url"], pipeline["url"])
    before = client.get_model_version_by_alias(MODEL, CHAMPION_ALIAS).version
    again = promote(pipeline["first"], pipeline["manifest"], settings=_settings(pipeline["url"]))
    assert again.reused
    assert again.outcome == "promoted"
    assert client.get_model_version_by_alias(MODEL, CHAMPION_ALIAS).version == before
    assert len(client.search_model_versions(f"name = '{MODEL}'")) == len(_versions(pipeline["url"]))


def test_a_champion_without_a_training_record_is_not_compared_silently(pipeline) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(pipeline["url"], pipeline["url"])
    champion = client.get_model_version_by_alias(MODEL, CHAMPION_ALIAS)
    digest = champion.tags["training.reviews_digest"]
    client.delete_model_version_tag(
        MODEL, champion.version, "training.reviews_digest"
    )  # as before the record
    try:
        result = register(
            [pipeline["good_run"]], pipeline["manifest"], settings=_settings(pipeline["url"]),
            policy=GatePolicy(floor=0.8), pipeline_run_id="week-legacy-champion",
        )  # fmt: skip
    finally:
        client.set_model_version_tag(MODEL, champion.version, "training.reviews_digest", digest)
    assert (result.passed, result.outcome) == (False, "kept")
    assert f"cannot compare fairly with champion v{champion.version}" in result.reason
    assert client.get_model_version_by_alias(MODEL, CHAMPION_ALIAS).version == champion.version


REQUEST = {
    "Review Text": [
        "I love this dress, it fits perfectly and the fabric is soft",
        "I do not love this dress, it does not fit and the fabric is cheap",
        "Returned it, cheap fabric and terrible fit",
    ],
    "Title": ["Perfect", "", None],
}


def test_champion_scores_raw_text_in_a_fresh_process(pipeline) -> None:
    code = (
        "import json, sys, pandas as pd, mlflow\n"
        f"m = mlflow.pyfunc.load_model('models:/{MODEL}@champion')\n"
        "out = m.predict(pd.DataFrame(json.loads(sys.argv[1])))\n"
        "print(json.dumps({'p': out['probability'].tolist(), 'label': out['label'].tolist(),\n"
        "                  'threshold': m.unwrap_python_model().threshold}))\n"
    )
    env = {**os.environ, "MLFLOW_TRACKING_URI": pipeline["url"]}
    done = subprocess.run(
        [sys.executable, "-c", code, json.dumps(REQUEST)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd="/",
    )
    assert done.returncode == 0, done.stderr[-2000:]
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    probabilities = answer["p"]
    assert len(probabilities) == 3
    # The label output applies the threshold chosen on validation, stored with the model.
    assert 0.0 < answer["threshold"] < 1.0
    assert answer["label"] == [int(p >= answer["threshold"]) for p in probabilities]
    assert all(0.0 <= p <= 1.0 for p in probabilities)
    assert probabilities[0] > probabilities[1]  # the negation lowers the score
    assert probabilities[0] > probabilities[2]


def test_mlflow_models_serve_answers_raw_text(pipeline, tmp_path: Path) -> None:
    port = free_port()
    # The scoring server execs `uvicorn`, which lives beside this interpreter.
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": pipeline["url"], "PATH": path}
    log = open(tmp_path / "serve.log", "wb")  # noqa: SIM115 - closed in finally
    server = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("mlflow")),
            "models",
            "serve",
            "-m",
            f"models:/{MODEL}@champion",
            "--env-manager",
            "local",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        body = json.dumps(
            {"dataframe_split": {"columns": ["Review Text"], "data": [[REQUEST["Review Text"][0]]]}}
        )
        deadline, answer = time.monotonic() + 180, None
        while answer is None and time.monotonic() < deadline:
            assert server.poll() is None, (tmp_path / "serve.log").read_text()[-2000:]
            try:
                request = urllib.request.Request(
                    f"http://127.0.0.1:{port}/invocations",
                    body.encode(),
                    {"Content-Type": "application/json"},
                )
                with urllib.request.urlopen(request, timeout=10) as response:
                    answer = json.loads(response.read())
            except OSError:
                time.sleep(1)
        assert answer is not None, "mlflow models serve never answered"
        predictions = answer["predictions"]
        assert len(predictions) == 1
        assert 0.5 < float(predictions[0]["probability"]) <= 1.0
        assert predictions[0]["label"] == 1
    finally:
        import signal

        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
        log.close()


def test_every_version_carries_its_evaluation_report(pipeline, tmp_path: Path) -> None:
    import mlflow.artifacts
    from mlflow import MlflowClient

    from review_sentiment.report import PLOTS

    client = MlflowClient(pipeline["url"], pipeline["url"])
    version = client.get_model_version(MODEL, pipeline["first"].version)
    assert version.description.startswith(f"# {MODEL} version {version.version}")
    assert "## Known limits" in version.description
    assert version.tags["report.artifacts"] == f"runs:/{pipeline['good_run']}/evaluation"
    local = Path(
        mlflow.artifacts.download_artifacts(
            run_id=pipeline["good_run"],
            artifact_path="evaluation",
            dst_path=str(tmp_path),
            tracking_uri=pipeline["url"],
        )
    )
    for name in (*PLOTS, "slices.csv", "model_card.md", "metrics.json"):
        assert (local / name).stat().st_size > 100, name
    slices = (local / "slices.csv").read_text()
    assert "department" in slices
    assert "length" in slices
    assert "rating" in slices


def test_register_stores_the_test_splits_prediction_distribution_with_the_version(pipeline) -> None:
    """``record`` stores the reference of sentiment_score's prediction watch; against it, the
    champion's own answers on a real week stay under the PSI alert and on one-star reviews pass it."""
    from mlflow import MlflowClient

    from review_sentiment import scoring
    from review_sentiment.distribution import bin_fractions, psi
    from review_sentiment.schema import ORIGINAL_TO_CANONICAL
    from review_sentiment.watch import load_reference
    from tests.support.toy_model import real_weeks

    client = MlflowClient(pipeline["url"], pipeline["url"])
    version = client.get_model_version(MODEL, pipeline["first"].version)
    reference, why = load_reference(client, version.run_id)
    assert why == ""
    test = pd.read_parquet(Path(pipeline["manifest"]).parent / "test.parquet")
    assert reference.summary.count == len(test)
    assert len(reference.edges) == 9  # a trained model's probabilities: ten distinct deciles
    assert sum(reference.fractions) == pytest.approx(1.0)
    assert reference.threshold == pytest.approx(float(version.tags["candidate.threshold"]), abs=1e-6)
    weeks = real_weeks(real_reviews())
    shift = {}
    for name in ("week", "one_star"):
        frame = weeks[name].rename(columns=ORIGINAL_TO_CANONICAL)
        probability = scoring.score(f"models:/{MODEL}/{version.version}", frame)
        shift[name] = psi(reference.fractions, bin_fractions(probability, reference.edges))
    assert shift["week"] < 0.2 < shift["one_star"], shift


def test_a_candidate_that_loses_to_the_baseline_is_refused(pipeline) -> None:
    from mlflow import MlflowClient

    from review_sentiment.baseline import train_baseline

    experiment = ensure_experiment("stages-integration", pipeline["url"])
    baseline_run = train_baseline(
        pipeline["manifest"], experiment_id=experiment, tracking_uri=pipeline["url"]
    )
    client = MlflowClient(pipeline["url"], pipeline["url"])
    baseline = client.get_run(baseline_run)
    assert baseline.data.tags["sentiment.role"] == "baseline"
    assert baseline.data.metrics["test_roc_auc"] > 0.9  # TF-IDF + LR is strong on this data
    champion_before = client.get_model_version_by_alias(MODEL, CHAMPION_ALIAS).version

    # The small seed-architecture model of this fixture is weaker than the baseline.
    result = register(
        [pipeline["good_run"]],
        pipeline["manifest"],
        baseline_run_id=baseline_run,
        settings=_settings(pipeline["url"]),
        policy=GatePolicy(floor=0.8),
        pipeline_run_id="week-baseline",
    )
    assert not result.promoted
    assert "does not beat the TF-IDF + logistic regression baseline" in result.reason
    # Scored again from its stored probabilities (6 decimals), at its own threshold.
    assert result.baseline["roc_auc"] == pytest.approx(baseline.data.metrics["test_roc_auc"], abs=1e-4)
    version = client.get_model_version(MODEL, result.version)
    assert version.tags["gate.decision"] == "refused"
    assert version.tags["baseline.run_id"] == baseline_run
    # The model card's table holds the very figures of the version's tags, each model at its own
    # threshold: candidate, baseline, champion.
    rows = [line for line in version.description.splitlines() if line.startswith("| ") and "---" not in line]
    header, *models = (line.strip("| ").split(" | ") for line in rows)
    assert [m[0] for m in models] == [
        f"candidate v{result.version}",
        "TF-IDF + LR baseline",
        f"champion v{champion_before}",
    ]
    for (name, *figures), prefix in zip(models, ("candidate", "baseline", "champion"), strict=True):
        tagged = [f"{float(version.tags[f'{prefix}.test_{metric}']):.4f}" for metric in header[1:]]
        assert figures == tagged, name
    assert "ece" in header
    # The margin over the baseline: on the card and as a metric of the candidate's run.
    margin = result.candidate["roc_auc"] - result.baseline["roc_auc"]
    assert margin < 0
    assert f"ROC AUC margin over this run's baseline: **{margin:+.4f}**" in version.description
    logged = client.get_run(pipeline["good_run"]).data.metrics["test_roc_auc_margin_over_baseline"]
    assert logged == pytest.approx(margin, abs=1e-9)
    assert client.get_model_version_by_alias(MODEL, CHAMPION_ALIAS).version == champion_before


def test_a_drifted_week_passes_the_gate_but_keeps_the_champion(pipeline) -> None:
    """The champion's training snapshot plus 300 reviews of one department with inverted labels:
    register's drift check (against the champion's ``training.snapshot``) names what drifted, the
    gate still passes on the scores, and the whole week (``settle``) keeps the champion."""
    from mlflow import MlflowClient

    root = pipeline["root"]
    trained_on = pd.read_parquet(pipeline["snapshot"])
    everything = pd.read_parquet(ingest(real_reviews(), root / "all-reviews"))
    unseen = everything[~everything["review_id"].isin(trained_on["review_id"])]
    dresses = unseen[unseen["department_name"] == "Dresses"].sample(n=300, random_state=5)
    dresses = dresses.assign(recommended=(1 - dresses["recommended"]).astype(dresses["recommended"].dtype))
    week = root / "week-drift" / "ingest" / "reviews.parquet"
    week.parent.mkdir(parents=True)
    pd.concat([trained_on, dresses], ignore_index=True).to_parquet(week, index=False)
    client = MlflowClient(pipeline["url"], pipeline["url"])
    champion_before = client.get_model_version_by_alias(MODEL, CHAMPION_ALIAS).version

    result = register(
        [pipeline["good_run"]], pipeline["manifest"], settings=_settings(pipeline["url"], root),
        policy=GatePolicy(floor=0.8), snapshot_path=week, pipeline_run_id="week-drift",
    )  # fmt: skip
    assert result.passed, result.reason  # the same model as the champion: non-inferior
    assert result.drift.startswith(
        f"300 new reviews vs champion v{champion_before}'s training snapshot drifted: label share: "
    ), result.drift
    assert "text: a classifier tells new from old reviews" in result.drift
    assert (result.promoted, result.outcome) == (False, "drift")
    assert result.reason == f"the gate passed, but drift keeps the champion: {result.drift}"
    version = client.get_model_version(MODEL, result.version)
    assert version.tags["gate.drift"] == result.drift
    assert version.tags["gate.decision"] == "passed"
    assert version.tags["drift.new_reviews"] == "300"
    assert float(version.tags["drift.label_share"]) < 0.5 < float(version.tags["drift.reference_label_share"])
    assert version.tags["training.snapshot"] == "week-drift/ingest/reviews.parquet"
    assert client.get_model_version_by_alias(MODEL, CHAMPION_ALIAS).version == champion_before


def test_a_candidate_trained_on_30_percent_noisy_labels_loses_to_the_champion(
    pipeline, tmp_path: Path
) -> None:
    import shutil

    import numpy as np
    from mlflow import MlflowClient

    from review_sentiment.tokenize import Tokenized

    # The same splits, with 30% of the training labels flipped (validation and test untouched).
    noisy = tmp_path / "tokenize"
    shutil.copytree(Path(pipeline["manifest"]).parent, noisy)
    data = Tokenized(noisy / "manifest.json")
    y_path = data.path(data.manifest["splits"]["train"]["y"])
    y = np.load(y_path)
    flip = np.random.default_rng(0).random(len(y)) < 0.3
    np.save(y_path, np.where(flip, 1 - y, y).astype(y.dtype))

    experiment = ensure_experiment("stages-integration", pipeline["url"])
    noisy_run = train(noisy / "manifest.json", GOOD, experiment_id=experiment, tracking_uri=pipeline["url"])
    client = MlflowClient(pipeline["url"], pipeline["url"])
    champion_before = client.get_model_version_by_alias(MODEL, CHAMPION_ALIAS).version
    result = register(
        [noisy_run],
        pipeline["manifest"],
        settings=_settings(pipeline["url"]),
        policy=GatePolicy(floor=0.5),
        pipeline_run_id="week-noisy",
    )
    assert not result.promoted, result.reason
    assert "not shown non-inferior" in result.reason
    assert result.candidate["roc_auc"] < result.champion["roc_auc"]
    assert client.get_model_version_by_alias(MODEL, CHAMPION_ALIAS).version == champion_before


WEEK_ENDS = [
    datetime(2026, 11, 9, 3, tzinfo=UTC),
    datetime(2026, 11, 16, 3, tzinfo=UTC),
    datetime(2026, 11, 23, 3, tzinfo=UTC),
]


@pytest.fixture(scope="module")
def weekly(pipeline, postgres: PostgresServer, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A table whose reviews arrive in three weeks, 800 a week; week 3's labels are 30% flipped."""
    folder = tmp_path_factory.mktemp("weekly")
    source = pipeline["source"].replace("table=public.reviews", "table=public.weekly")
    raw = pd.read_csv(real_reviews()).sample(n=2400, random_state=3).reset_index(drop=True)
    label = "Recommended IND"
    for week, end in enumerate(WEEK_ENDS):
        part = raw.iloc[week * 800 : (week + 1) * 800].copy()
        if week == 2:
            flip = part.sample(frac=0.3, random_state=4).index
            part.loc[flip, label] = 1 - part.loc[flip, label]
        path = folder / f"week{week}.csv"
        part.to_csv(path, index=False)
        load_table(path, source, ingested_at=end - timedelta(days=3))
    return {"source": source, "folder": folder}


def test_a_weeks_snapshot_holds_what_had_arrived_by_its_interval_end(weekly, tmp_path: Path) -> None:
    import pandas as pd

    counts = [
        len(pd.read_parquet(ingest(weekly["source"], tmp_path / f"w{i}", as_of=end)))
        for i, end in enumerate(WEEK_ENDS)
    ]
    again = len(pd.read_parquet(ingest(weekly["source"], tmp_path / "again", as_of=WEEK_ENDS[1])))
    last_week = len(pd.read_parquet(ingest(weekly["source"], tmp_path / "last", as_of=WEEK_ENDS[2], weeks=1)))
    assert counts[0] < counts[1] < counts[2] <= 2400
    assert counts[1] - counts[0] > 700  # each week adds its ~800 reviews (less those without text)
    assert again == counts[1]  # a rerun of week 2 reproduces its rows
    assert last_week == counts[2] - counts[1]


def test_a_file_snapshot_records_the_files_content_hash(tmp_path: Path) -> None:
    import hashlib

    from review_sentiment.artifacts import read_json
    from review_sentiment.layout import IngestFiles

    snapshot = ingest(real_reviews(), tmp_path / "ingest", as_of=WEEK_ENDS[0], sample_fraction=0.05)
    report = read_json(IngestFiles.of(snapshot).report)
    assert report["content_sha256"] == hashlib.sha256(real_reviews().read_bytes()).hexdigest()


def test_champion_monitoring_logs_a_weekly_series_and_alerts_on_flipped_labels(pipeline, weekly) -> None:
    from mlflow import MlflowClient

    from review_sentiment.monitor import monitor_champion

    settings = _settings(pipeline["url"])
    results = [
        monitor_champion(
            weekly["source"],
            end - timedelta(weeks=1),
            end,
            settings=settings,
            week=end.strftime("%G-W%V"),
            floor=0.85,
            margin=0.05,
        )
        for end in WEEK_ENDS
    ]
    assert [r.count > 700 for r in results] == [True, True, True]
    assert {r.version for r in results} == {pipeline["first"].version} or len(
        {r.version for r in results}
    ) == 1
    assert results[0].alert is None, results[0]
    assert results[1].alert is None, results[1]
    assert results[2].scores["roc_auc"] < 0.85
    assert "below the monitoring floor 0.8500" in results[2].alert
    client = MlflowClient(pipeline["url"], pipeline["url"])
    history = client.get_metric_history(results[0].run_id, "monitor_roc_auc")
    assert sorted(m.step for m in history) == [int(e.strftime("%G%V")) for e in WEEK_ENDS]
    assert [m.value for m in sorted(history, key=lambda m: m.step)] == [r.scores["roc_auc"] for r in results]
