"""Airflow local settings for the Kubernetes deployment: CPU and memory of the ``train`` pods.

The Helm chart mounts this file as ``$AIRFLOW_HOME/config/airflow_local_settings.py`` (values key
``airflowLocalSettings``, set with ``--set-file``; deploy/kubernetes/README.md), and Airflow loads
it as a cluster policy. Its ``pod_mutation_hook`` runs in the scheduler on every pod the
KubernetesExecutor builds, after the pod template and any ``executor_config`` are merged; it
gives the pods of ``sentiment_retrain.train`` (each mapped grid point its own pod) the resources
below. Doing it here, by DAG and task id, leaves the DAG files as the compose stack runs them:
nothing in dags/ imports the Kubernetes client, and the DAG parse stays as light as it is.

Every other task pod keeps the size the chart's pod template gives it (``workers.resources`` in
values.yaml). The figures can be changed without a new image: set the ``SENTIMENT_K8S_TRAIN_*``
variables on the scheduler (the chart's ``env``).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

# Only the hook is handed to Airflow (it would copy every other public name into airflow.settings).
__all__ = ["pod_mutation_hook"]

if TYPE_CHECKING:  # the scheduler has the client; this module needs it only for the type
    from kubernetes.client import models as k8s

# The pods sized here: the labels the KubernetesExecutor puts on every task pod.
# The ids are review_sentiment's (config.RETRAIN_DAG_ID, task_ids.TRAIN), spelled out rather than
# imported: Airflow imports this module in every component at start-up, before any DAG code.
TRAIN_DAG_ID = "sentiment_retrain"
TRAIN_TASK_ID = "train"

# Requests are what the scheduler of the cluster reserves; limits are where the kernel stops the
# container (memory: OOM-killed, the task fails and Airflow retries it). One grid point trains at
# a time in its pod; TensorFlow uses the cores it is given.
TRAIN_DEFAULTS = {
    "SENTIMENT_K8S_TRAIN_CPU_REQUEST": "2",
    "SENTIMENT_K8S_TRAIN_MEMORY_REQUEST": "3Gi",
    "SENTIMENT_K8S_TRAIN_CPU_LIMIT": "4",
    "SENTIMENT_K8S_TRAIN_MEMORY_LIMIT": "6Gi",
}


def train_resources(env: dict[str, str] | None = None) -> dict[str, dict[str, str]]:
    """The requests and limits of a ``train`` pod.

    Args:
        env: Where the ``SENTIMENT_K8S_TRAIN_*`` overrides are read; the process environment
            when ``None``.

    Returns:
        ``{"requests": {"cpu", "memory"}, "limits": {"cpu", "memory"}}`` as Kubernetes quantities.

    Raises:
        ValueError: An override is empty.
    """
    source = os.environ if env is None else env
    values = {}
    for name, default in TRAIN_DEFAULTS.items():
        value = source.get(name, default).strip()
        if not value:
            raise ValueError(f"{name} is set but empty: give a Kubernetes quantity such as {default}")
        values[name] = value
    return {
        "requests": {
            "cpu": values["SENTIMENT_K8S_TRAIN_CPU_REQUEST"],
            "memory": values["SENTIMENT_K8S_TRAIN_MEMORY_REQUEST"],
        },
        "limits": {
            "cpu": values["SENTIMENT_K8S_TRAIN_CPU_LIMIT"],
            "memory": values["SENTIMENT_K8S_TRAIN_MEMORY_LIMIT"],
        },
    }


def is_train_pod(pod: k8s.V1Pod) -> bool:
    """Whether a pod is a KubernetesExecutor pod of ``sentiment_retrain.train``.

    Args:
        pod: A pod as the executor built it (its labels name the DAG and the task).

    Returns:
        True for the train pods, whatever their map index; False for any other pod.
    """
    labels = (pod.metadata.labels if pod.metadata else None) or {}
    return labels.get("dag_id") == TRAIN_DAG_ID and labels.get("task_id") == TRAIN_TASK_ID


def pod_mutation_hook(pod: k8s.V1Pod) -> None:
    """Give the ``train`` pods their CPU and memory (Airflow's cluster policy hook).

    The task runs in the container named ``base`` (the executor's name for it); only that
    container is resized, so sidecars keep their own figures.

    Args:
        pod: The pod about to be created; changed in place.
    """
    if not is_train_pod(pod):
        return
    from kubernetes.client import models as k8s

    figures = train_resources()
    for container in pod.spec.containers:
        if container.name == "base":
            container.resources = k8s.V1ResourceRequirements(
                requests=figures["requests"], limits=figures["limits"]
            )
