"""OpenLineage dataset names (review_sentiment.lineage): the naming spec's forms, no credentials."""

from __future__ import annotations

from pathlib import Path

import pytest

from review_sentiment.lineage import Dataset, dataset_of

TRACKING = "http://mlflow:5000"


def test_a_file_is_named_by_its_absolute_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert dataset_of("data/reviews.csv.gz", TRACKING) == Dataset("file", f"{tmp_path}/data/reviews.csv.gz")
    assert dataset_of(tmp_path / "x.parquet", TRACKING) == Dataset("file", f"{tmp_path}/x.parquet")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://u:secret@db:5433/shop?table=reviews",
         Dataset("postgres://db:5433", "shop.public.reviews")),
        ("postgres://u@db/shop?table=raw.reviews", Dataset("postgres://db:5432", "shop.raw.reviews")),
        ("postgresql+psycopg2://u:***@db:5432/shop?table=review_predictions",
         Dataset("postgres://db:5432", "shop.public.review_predictions")),
    ],
)  # fmt: skip
def test_a_table_is_named_host_port_and_db_schema_table_without_login(url: str, expected: Dataset) -> None:
    found = dataset_of(url, TRACKING)
    assert found == expected
    assert "secret" not in repr(found)
    assert "u@" not in found.namespace


def test_mlflow_refs_live_in_the_tracking_servers_namespace_without_credentials() -> None:
    uri = "https://bot:pw@mlflow.example:8443/?x=1"
    assert dataset_of("models:/m/3", uri) == Dataset("https://mlflow.example:8443/", "models:/m/3")
    assert dataset_of("models:/m@champion", TRACKING) == Dataset(TRACKING, "models:/m@champion")
    assert dataset_of("runs:/abc", "sqlite:////s/mlflow.db?x=1") == Dataset(
        "sqlite:////s/mlflow.db", "runs:/abc"
    )
