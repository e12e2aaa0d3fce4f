"""What the Helm chart would hand the KubernetesExecutor, built from deploy/kubernetes/values.yaml.

No helm binary runs here, so the chart's worker pod template (its
``files/pod-template-file.kubernetes-helm-yaml``, read at the source) is modelled for the parts
our values drive: container ``base`` with ``envFrom`` from ``extraEnvFrom``; ``env`` starting with
``AIRFLOW__CORE__EXECUTOR=LocalExecutor``, then the chart's secret-backed variables (metadata
connection, Fernet key), then the values' ``env`` and ``secret``; the image; ``workers.resources``;
the logs and config mounts (airflow.cfg and airflow_local_settings.py) and
``workers.extraVolumeMounts``; the logs claim, the config map and ``workers.extraVolumes``; for a
release named ``airflow``. The pods built from it by Airflow's own code are then checked
(tests/deploy/test_kubernetes.py).

CHART_KEYS is the list of the chart's value keys this deployment relies on, each documented in the
chart's parameter reference (https://airflow.apache.org/docs/helm-chart/1.22.0/parameters-ref.html);
the test fails when values.yaml sets a key outside it, so a typo cannot pass silently (the chart
itself would reject it only at `helm install`, through its values.schema.json).
"""

from __future__ import annotations

from pathlib import Path

import yaml

from review_sentiment.config import PROJECT_ROOT

K8S_DIR = PROJECT_ROOT / "deploy" / "kubernetes"
VALUES_FILE = K8S_DIR / "values.yaml"
LOCAL_SETTINGS_FILE = K8S_DIR / "airflow_local_settings.py"
CHART_VERSION = "1.22.0"
RELEASE = "airflow"  # the release name the README installs with
KUBERNETES_VERSION = "1.33.0"  # the schema version the pods are validated against

# The secrets the deployment reads (README: their keys), and what each pod must reference.
SECRETS = {
    "sentiment-airflow-metadata",
    "sentiment-airflow-fernet-key",
    "sentiment-airflow-api-secret-key",
    "sentiment-airflow-jwt-secret",
    "sentiment-reviews-db",
    "sentiment-mlflow",
}
SECRET_ENV = {
    "AIRFLOW_CONN_REVIEWS_DB": ("sentiment-reviews-db", "uri"),
    "SENTIMENT_LOCK_URI": ("sentiment-airflow-metadata", "lock-uri"),
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": ("sentiment-airflow-metadata", "connection"),
    "AIRFLOW__CORE__FERNET_KEY": ("sentiment-airflow-fernet-key", "fernet-key"),
}
# The chart's keys set in values.yaml (dotted paths; a list or mapping value counts as one leaf).
CHART_KEYS = frozenset(
    {
        "airflowVersion",
        "defaultAirflowTag",
        "defaultAirflowRepository",
        "executor",
        "dags.persistence.enabled",
        "dags.gitSync.enabled",
        "postgresql.enabled",
        "data.metadataSecretName",
        "fernetKeySecretName",
        "apiSecretKeySecretName",
        "jwtSecretName",
        "redis.enabled",
        "flower.enabled",
        "createUserJob.defaultUser.enabled",
        "env",
        "secret",
        "extraEnvFrom",
        "workers.resources.requests.cpu",
        "workers.resources.requests.memory",
        "workers.resources.limits.memory",
        "workers.extraVolumes",
        "workers.extraVolumeMounts",
        "scheduler.extraVolumes",
        "scheduler.extraVolumeMounts",
        "dagProcessor.extraVolumes",
        "dagProcessor.extraVolumeMounts",
        "logs.persistence.enabled",
        "logs.persistence.size",
        "config.core.load_examples",
        "config.core.dags_are_paused_at_creation",
        "config.core.auth_manager",
        "config.kubernetes_executor.delete_worker_pods_on_failure",
    }
)


def load_values(path: Path = VALUES_FILE) -> dict:
    """The values file, parsed (anchors resolved)."""
    return yaml.safe_load(path.read_text())


def leaf_keys(values: dict, prefix: str = "") -> set[str]:
    """The dotted paths of a values mapping down to its leaves (lists are leaves)."""
    keys: set[str] = set()
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            keys |= leaf_keys(value, f"{path}.")
        else:
            keys.add(path)
    return keys


def worker_image(values: dict) -> tuple[str, str]:
    """The task pods' image: ``defaultAirflowRepository`` and ``defaultAirflowTag`` (no
    ``images.*`` override is set), which the chart writes to
    ``[kubernetes_executor] worker_container_repository`` / ``worker_container_tag``."""
    return values["defaultAirflowRepository"], str(values["defaultAirflowTag"])


def _secret_env(name: str, secret: str, key: str) -> dict:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def pod_template(values: dict) -> dict:
    """The worker pod template the chart would render from ``values`` (see the module docstring).

    Args:
        values: deploy/kubernetes/values.yaml, parsed.

    Returns:
        A Pod manifest, the content of ``[kubernetes_executor] pod_template_file``.
    """
    repository, tag = worker_image(values)
    workers = values["workers"]
    metadata_secret = values["data"]["metadataSecretName"]
    env = [
        # The chart's template runs the task itself in the pod, hence LocalExecutor there.
        {"name": "AIRFLOW__CORE__EXECUTOR", "value": "LocalExecutor"},
        _secret_env("AIRFLOW__CORE__FERNET_KEY", values["fernetKeySecretName"], "fernet-key"),
        _secret_env("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", metadata_secret, "connection"),
        _secret_env("AIRFLOW_CONN_AIRFLOW_DB", metadata_secret, "connection"),
        *values["env"],
        *(_secret_env(s["envName"], s["secretName"], s["secretKey"]) for s in values["secret"]),
    ]
    mounts = [
        {"name": "logs", "mountPath": "/opt/airflow/logs"},
        {
            "name": "config",
            "mountPath": "/opt/airflow/airflow.cfg",
            "subPath": "airflow.cfg",
            "readOnly": True,
        },
        {
            "name": "config",
            "mountPath": "/opt/airflow/config/airflow_local_settings.py",
            "subPath": "airflow_local_settings.py",
            "readOnly": True,
        },
        *workers["extraVolumeMounts"],
    ]
    volumes = [
        {"name": "logs", "persistentVolumeClaim": {"claimName": f"{RELEASE}-logs"}},
        {"name": "config", "configMap": {"name": f"{RELEASE}-config"}},
        *workers["extraVolumes"],
    ]
    container = {
        "name": "base",
        "image": f"{repository}:{tag}",
        "imagePullPolicy": "IfNotPresent",  # images.pod_template.pullPolicy's default
        "env": env,
        "envFrom": yaml.safe_load(values["extraEnvFrom"]),
        "resources": workers["resources"],
        "volumeMounts": mounts,
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "placeholder-name",
            "labels": {"tier": "airflow", "component": "worker", "release": RELEASE},
        },
        "spec": {
            "containers": [container],
            "restartPolicy": "Never",
            "serviceAccountName": f"{RELEASE}-worker",
            "securityContext": {"runAsUser": 50000, "fsGroup": 0},
            "volumes": volumes,
        },
    }
