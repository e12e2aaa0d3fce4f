"""train's dataset inputs: a unique violation from a parallel run's identical dataset is retried;
any other MLflow error is not."""

from __future__ import annotations

from types import SimpleNamespace

import mlflow
import pytest
from mlflow.exceptions import MlflowException

from review_sentiment.train import log_input_once

RACE = '(psycopg2.errors.UniqueViolation) duplicate key value violates unique constraint "dataset_pk"'


def _failing(errors: list[str], calls: list[str]):
    def log_input(dataset, context=None):
        calls.append(context)
        if errors:
            raise MlflowException(errors.pop(0))

    return log_input


def test_a_lost_dataset_race_is_retried(monkeypatch) -> None:
    calls: list[str] = []
    monkeypatch.setattr(mlflow, "log_input", _failing([RACE], calls))
    log_input_once(SimpleNamespace(name="train"), "training")
    assert calls == ["training", "training"]


def test_another_error_is_raised_at_once(monkeypatch) -> None:
    calls: list[str] = []
    monkeypatch.setattr(mlflow, "log_input", _failing(["RESOURCE_DOES_NOT_EXIST: run abc"], calls))
    with pytest.raises(MlflowException, match="RESOURCE_DOES_NOT_EXIST"):
        log_input_once(SimpleNamespace(name="train"), "training")
    assert calls == ["training"]


def test_a_race_that_persists_is_raised_after_the_last_attempt(monkeypatch) -> None:
    calls: list[str] = []
    monkeypatch.setattr(mlflow, "log_input", _failing([RACE] * 5, calls))
    with pytest.raises(MlflowException, match="dataset_pk"):
        log_input_once(SimpleNamespace(name="train"), "training", attempts=3)
    assert len(calls) == 3
