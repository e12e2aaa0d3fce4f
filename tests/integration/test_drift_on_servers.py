"""The drift check on the real reviews against a champion registered on a real MLflow server.

The champion (the toy pyfunc of tests/support/toy_model.py: no training) carries the
``training.snapshot`` tag register writes, naming a snapshot of 95% of the real reviews. The weeks
are that snapshot plus the held-out 5%: as they are (an ordinary week), or only their dresses with
inverted labels (a drifted week). Each is checked the way register's evidence gathering does:
the champion found by its alias, its snapshot by its tag (``drift.check_against_champion``).
The path through ``register`` itself is in test_stages_on_servers.py.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from review_sentiment import versions
from review_sentiment.drift import DriftResult, check_against_champion, snapshot_tag
from review_sentiment.ingest import ingest
from review_sentiment.layout import ArtifactLayout
from tests.support.servers import MlflowServer
from tests.support.toy_model import register_toy_version

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MODEL = "customer-sentiment-analysis-drift"


@pytest.fixture(scope="module")
def weeks(real_reviews_path: Path, mlflow_server: MlflowServer, tmp_path_factory: pytest.TempPathFactory):
    """The champion's snapshot (95% of the real reviews, tagged on the champion) and three weeks."""
    from mlflow import MlflowClient

    root = tmp_path_factory.mktemp("drift-artifacts")
    everything = pd.read_parquet(ingest(real_reviews_path, root / "all"))
    held = np.random.default_rng(20).random(len(everything)) < 0.05
    trained_on, new = everything[~held], everything[held]
    dresses = new[new["department_name"] == "Dresses"]
    inverted = dresses.assign(recommended=(1 - dresses["recommended"]).astype(dresses["recommended"].dtype))
    frames = {
        "champion": trained_on,
        "ordinary": everything,
        "drifted": pd.concat([trained_on, inverted]),
        "one-star": pd.concat([trained_on, new[new["rating"] == 1]]),
    }
    paths = {}
    for name, frame in frames.items():
        paths[name] = root / name / "ingest" / "reviews.parquet"
        paths[name].parent.mkdir(parents=True)
        frame.to_parquet(paths[name], index=False)
    layout = ArtifactLayout(root)
    client = MlflowClient(mlflow_server.url, mlflow_server.url)
    version = register_toy_version(mlflow_server.url, MODEL)
    for key, value in snapshot_tag(paths["champion"], layout).items():
        client.set_model_version_tag(MODEL, version, key, value)
    return {"paths": paths, "layout": layout, "client": client, "version": version, "new": new}


def _check(weeks: dict, week: str) -> tuple[DriftResult, float]:
    """The week against the champion, as register's evidence gathering does it; and its seconds."""
    started = time.perf_counter()
    champion = versions.champion_version(weeks["client"], MODEL)
    result = check_against_champion(weeks["paths"][week], champion, weeks["layout"])
    return result, time.perf_counter() - started


def test_the_champion_names_its_training_snapshot_relative_to_the_root(weeks) -> None:
    champion = weeks["client"].get_model_version(MODEL, weeks["version"])
    assert champion.tags["training.snapshot"] == "champion/ingest/reviews.parquet"


def test_an_ordinary_five_percent_week_does_not_drift(weeks) -> None:
    result, seconds = _check(weeks, "ordinary")
    assert not result.drifted, result.reason
    assert result.new_reviews == len(weeks["new"]) > 900
    assert result.reason.startswith(
        f"{len(weeks['new'])} new reviews vs champion v{weeks['version']}'s training snapshot: no drift ("
    )
    assert abs(result.label_share - result.reference_label_share) < 0.03
    assert result.rating_distance < 0.06
    assert result.text_auc < 0.56
    assert seconds < 30, seconds  # about 2 s here on 20,341 reviews


def test_a_week_of_one_department_with_inverted_labels_drifts_and_says_what(weeks) -> None:
    result, seconds = _check(weeks, "drifted")
    dresses = int((weeks["new"]["department_name"] == "Dresses").sum())
    assert result.drifted
    assert result.new_reviews == dresses >= 200
    assert result.reason.startswith(
        f"{dresses} new reviews vs champion v{weeks['version']}'s training snapshot drifted: label share: "
    ), result.reason
    assert "text: a classifier tells new from old reviews with ROC AUC" in result.reason
    assert "dress" in result.reason.split("words typical of the new:")[1]
    assert "rating distribution" not in result.reason  # the ratings were left as they were
    assert result.label_share < 0.3 < 0.7 < result.reference_label_share
    assert result.text_auc > 0.7
    assert seconds < 30, seconds


def test_a_handful_of_one_star_reviews_is_too_few_for_a_verdict(weeks) -> None:
    result, _ = _check(weeks, "one-star")
    ones = int((weeks["new"]["rating"] == 1).sum())
    assert 0 < ones < 200
    assert not result.drifted
    assert result.reason.startswith(f"no drift verdict: too few new reviews ({ones} not in champion v")
