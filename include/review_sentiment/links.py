"""Addresses of the Airflow and MLflow UI pages that extra links and notifications point to.

One home for each address, so the MLflow link on the ``register`` task and the one in a mail are
the same. Plain string building: no Airflow or MLflow import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import quote

if TYPE_CHECKING:
    from review_sentiment.config import Settings


def run_url(base: str, experiment_id: str, run_id: str) -> str:
    """The MLflow UI page of one run."""
    return f"{base}/#/experiments/{quote(str(experiment_id))}/runs/{quote(str(run_id))}"


def model_version_url(base: str, model_name: str, version: str) -> str:
    """The MLflow UI page of one registered model version."""
    return f"{base}/#/models/{quote(model_name)}/versions/{quote(str(version))}"


def airflow_run_url(settings: Settings, dag_id: str, run_id: str) -> str:
    """The Airflow 3 UI page of one DAG run (the UI's ``dags/:dagId/runs/:runId`` route).

    Args:
        settings: gives ``airflow_ui_url``, the UI's base URL as users' browsers reach it.
        dag_id: the DAG.
        run_id: the DAG run; run ids hold ``:`` and ``+`` and are quoted whole.

    Returns:
        The absolute URL of the run's page.
    """
    return f"{settings.airflow_ui_url}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"
