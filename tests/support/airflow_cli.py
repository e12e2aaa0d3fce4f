"""The ``airflow`` command of this virtualenv, and a migrated Airflow home for ``dags test``."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from review_sentiment.config import PROJECT_ROOT

AIRFLOW = str(Path(sys.executable).with_name("airflow"))


def airflow(env: Mapping[str, str], *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """Run ``airflow *args`` from the project root; output captured, never raising on failure."""
    return subprocess.run(
        [AIRFLOW, *args], env=dict(env), capture_output=True, text=True, timeout=timeout, cwd=PROJECT_ROOT
    )


def project_airflow_env(
    home: Path, database_url: str, mlflow_url: str, extra: Mapping[str, str], *, drop: tuple[str, ...] = ()
) -> dict[str, str]:
    """An environment running the project's DAGs on ``database_url`` and ``mlflow_url``, with the
    metadata database migrated.

    Args:
        home: AIRFLOW_HOME (artifacts go under it too).
        database_url: SQLAlchemy URL of Airflow's metadata database.
        mlflow_url: The MLflow server's tracking and registry URL.
        extra: Further variables (model name, data path...), which win over the defaults.
        drop: Variables of this process's environment to leave out.

    Raises:
        AssertionError: ``airflow db migrate`` failed.
    """
    env = {
        **{k: v for k, v in os.environ.items() if k not in drop},
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT_ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database_url,
        "PYTHONPATH": str(PROJECT_ROOT / "include"),
        "MLFLOW_TRACKING_URI": mlflow_url,
        "SENTIMENT_ARTIFACT_ROOT": str(home / "artifacts"),
        "TF_CPP_MIN_LOG_LEVEL": "2",
        **extra,
    }
    migrate = airflow(env, "db", "migrate")
    assert migrate.returncode == 0, migrate.stderr[-3000:]
    return env
