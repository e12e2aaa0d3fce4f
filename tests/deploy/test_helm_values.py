"""deploy/kubernetes/values.yaml: parses, sets only the chart keys we document, and says what the
deployment needs (the project's Airflow version, the executor, the baked-in DAGs, the secrets)."""

from __future__ import annotations

import re

import yaml

from review_sentiment.config import PROJECT_ROOT
from tests.deploy import chart_model

README = chart_model.K8S_DIR / "README.md"


def test_values_set_only_documented_chart_keys() -> None:
    values = chart_model.load_values()
    assert chart_model.leaf_keys(values) == chart_model.CHART_KEYS


def test_leaf_keys_sees_a_misspelt_key() -> None:
    """The key check can fail: a typo is a new leaf, outside the documented list."""
    values = yaml.safe_load("workers:\n  resource:\n    limits:\n      memory: 2Gi\n")
    assert chart_model.leaf_keys(values) == {"workers.resource.limits.memory"}
    assert not chart_model.leaf_keys(values) <= chart_model.CHART_KEYS


def test_airflow_version_is_the_image_and_the_lock() -> None:
    values = chart_model.load_values()
    dockerfile = (PROJECT_ROOT / "Dockerfile").read_text()
    [image_version] = re.findall(r"^FROM apache/airflow:(?:slim-)?([0-9.]+)-", dockerfile, re.M)
    [locked] = re.findall(
        r"^apache-airflow==([0-9.]+)$", (PROJECT_ROOT / "requirements.txt").read_text(), re.M
    )
    assert values["airflowVersion"] == image_version == locked
    # The image tag is the user's (a placeholder), and says which Airflow it carries.
    assert values["defaultAirflowTag"].startswith(locked)
    assert "images" not in values  # one image for every component and task pod


def test_executor_bundle_and_database() -> None:
    values = chart_model.load_values()
    assert values["executor"] == "KubernetesExecutor"
    assert values["dags"]["gitSync"]["enabled"] is False
    assert values["dags"]["persistence"]["enabled"] is False
    assert values["postgresql"]["enabled"] is False
    assert values["redis"]["enabled"] is False


def test_the_readme_documents_every_secret_and_the_chart_version() -> None:
    text = README.read_text()
    values_text = chart_model.VALUES_FILE.read_text()
    for name in chart_model.SECRETS:
        assert f"`{name}`" in text, name
        assert name in values_text, name
    assert f"--version {chart_model.CHART_VERSION}" in text
    assert f"chart version {chart_model.CHART_VERSION}" in values_text
    assert "--set-file airflowLocalSettings=deploy/kubernetes/airflow_local_settings.py" in text


def test_the_chart_uses_the_auth_manager_of_compose() -> None:
    """One auth manager everywhere: the FAB one of deploy/airflow.env, whose users and roles the
    README tells how to create (the chart makes no default user)."""
    values = chart_model.load_values()
    airflow_env = dict(
        line.split("=", 1)
        for line in (PROJECT_ROOT / "deploy" / "airflow.env").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert values["config"]["core"]["auth_manager"] == airflow_env["AIRFLOW__CORE__AUTH_MANAGER"]
    assert values["config"]["core"]["auth_manager"].endswith(".FabAuthManager")
    assert values["createUserJob"]["defaultUser"]["enabled"] is False
    assert "airflow users create --role Admin" in " ".join(README.read_text().split())
