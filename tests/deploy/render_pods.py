"""Render the pods the KubernetesExecutor would launch for every task of the sentiment DAGs.

Run as ``python -m tests.deploy.render_pods OUTPUT.json`` in a process whose environment is the
deployment's (tests/deploy/test_kubernetes.py sets it up: KubernetesExecutor, the worker image and
pod template the chart would configure, and ``$AIRFLOW_HOME/config/airflow_local_settings.py``,
where the chart mounts deploy/kubernetes/airflow_local_settings.py). A separate process, so that
Airflow reads that configuration and loads the local settings at import, as the scheduler does.

The pods are built by the provider's own code, the way the executor builds them
(``AirflowKubernetesScheduler._build_pod_request`` in provider 10.25.0): the workload command of
``ExecuteTask.make``, the pod template from ``[kubernetes_executor] pod_template_file``, the image
from ``KubeConfig``, the task's ``executor_config`` merged by ``PodGenerator.construct_pod`` and the
``pod_mutation_hook`` applied. Not the provider's ``airflow kubernetes generate-dag-yaml``: on
Airflow 3.3.2 with provider 10.25.0 it stops at the first mapped task (``train``: its scheduler
operator has no DAG, AttributeError 'SerializedMappedOperator' object has no attribute 'dag'),
its ``-B`` option passes a list where a bundle name is expected, and it needs a migrated metadata
database. Mapped tasks are rendered here for map index 0 (every index gets the same pod but for
its labels).
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from review_sentiment.config import (
    HOUSEKEEPING_DAG_ID,
    PROJECT_ROOT,
    RETRAIN_DAG_ID,
    ROLLBACK_DAG_ID,
    SCORE_DAG_ID,
)

DAG_IDS = (RETRAIN_DAG_ID, SCORE_DAG_ID, ROLLBACK_DAG_ID, HOUSEKEEPING_DAG_ID)
# A Monday run of the weekly schedule: any date works, the pods carry it only in labels.
LOGICAL_DATE = datetime(2026, 12, 7, 3, 0, tzinfo=UTC)
BUNDLE_NAME = "dags-folder"  # the bundle of the DAGs folder baked into the image


def render(dag_ids: tuple[str, ...] = DAG_IDS) -> list[dict]:
    """Build the executor's pod for every task of the given DAGs.

    Args:
        dag_ids: The DAGs to render, parsed from the project's dags/ folder.

    Returns:
        One Kubernetes Pod manifest (a plain dict, as the executor would send it) per task.

    Raises:
        RuntimeError: A DAG file does not import, or a DAG is missing.
    """
    from airflow.dag_processing.dagbag import BundleDagBag
    from airflow.providers.cncf.kubernetes.executors.kubernetes_executor import KubeConfig
    from airflow.providers.cncf.kubernetes.pod_generator import PodGenerator
    from airflow.serialization.serialized_objects import DagSerialization
    from kubernetes.client import ApiClient

    # As the DAG processor parses a bundle: file locations relative to the bundle's root.
    dags = PROJECT_ROOT / "dags"
    bag = BundleDagBag(dag_folder=dags, bundle_path=dags, bundle_name=BUNDLE_NAME)
    if bag.import_errors:
        raise RuntimeError(f"the DAG files do not import: {bag.import_errors}")
    kube_config = KubeConfig()
    base_pod = PodGenerator.deserialize_model_file(kube_config.pod_template_file)
    api = ApiClient()
    manifests = []
    for dag_id in dag_ids:
        if dag_id not in bag.dags:
            raise RuntimeError(f"DAG {dag_id} is not in {PROJECT_ROOT / 'dags'}")
        # The scheduler's view of the DAG (what the executor sees), tasks with their DAG attached.
        dag = DagSerialization.from_dict(DagSerialization.to_dict(bag.dags[dag_id]))
        for task in dag.tasks:
            pod = _task_pod(dag, task, kube_config, base_pod)
            manifests.append(api.sanitize_for_serialization(pod))
    return manifests


def _task_pod(dag, task, kube_config, base_pod):
    """One task's pod, built as ``AirflowKubernetesScheduler._build_pod_request`` builds it."""
    from airflow.executors.workloads import ExecuteTask
    from airflow.models import DagModel, DagRun, TaskInstance
    from airflow.providers.cncf.kubernetes.kubernetes_helper_functions import create_unique_id
    from airflow.providers.cncf.kubernetes.pod_generator import PodGenerator, workload_to_command_args
    from airflow.utils.types import DagRunType
    from uuid6 import uuid7

    run_id = DagRun.generate_run_id(
        run_type=DagRunType.SCHEDULED, logical_date=LOGICAL_DATE, run_after=LOGICAL_DATE
    )
    map_index = 0 if type(task).__name__ == "SerializedMappedOperator" else -1
    ti = TaskInstance(task, run_id=run_id, dag_version_id=uuid7(), map_index=map_index)
    ti.try_number = 1
    ti.dag_run = DagRun(dag.dag_id, run_id=run_id, logical_date=LOGICAL_DATE, run_type=DagRunType.SCHEDULED)
    ti.dag_model = DagModel(dag_id=dag.dag_id, bundle_name=BUNDLE_NAME, relative_fileloc=dag.relative_fileloc)
    workload = ExecuteTask.make(ti)
    return PodGenerator.construct_pod(
        namespace=kube_config.executor_namespace,
        scheduler_job_id="1",
        pod_id=create_unique_id(dag.dag_id, task.task_id),
        dag_id=dag.dag_id,
        task_id=task.task_id,
        kube_image=kube_config.kube_image,
        try_number=ti.try_number,
        map_index=map_index,
        date=None,
        run_id=run_id,
        args=workload_to_command_args(workload),
        pod_override_object=PodGenerator.from_obj(ti.executor_config),
        base_worker_pod=base_pod,
        with_mutation_hook=True,
    )


def main(argv: list[str]) -> int:
    """Write the rendered pods of all four DAGs to the JSON file named by ``argv[0]``.

    The file also names the ``airflow_local_settings`` module Airflow loaded ("" for none), so the
    caller can check that the hook applied is the deployment's.
    """
    if len(argv) != 1:
        print("usage: python -m tests.deploy.render_pods OUTPUT.json", file=sys.stderr)
        return 2
    pods = render()
    local_settings = sys.modules.get("airflow_local_settings")
    loaded = str(getattr(local_settings, "__file__", "")) if local_settings else ""
    Path(argv[0]).write_text(json.dumps({"local_settings": loaded, "pods": pods}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
