"""The Kubernetes path, offline: the Helm values, and the pods the KubernetesExecutor would launch.

The pods of every task of sentiment_retrain, sentiment_score, sentiment_rollback and
sentiment_housekeeping are built by Airflow's and the cncf-kubernetes provider's own code
(tests/deploy/render_pods.py says how and why not `airflow kubernetes generate-dag-yaml`), from
the chart's pod template as our values render it (tests/deploy/chart_model.py) and with
deploy/kubernetes/airflow_local_settings.py loaded by Airflow as the chart mounts it. Each pod is
validated against the Kubernetes schema (kubernetes-validate, strict) and checked for the image,
the environment, the secret references, the artifact volume and, for train, the CPU and memory
of the pod_mutation_hook.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from review_sentiment import task_ids
from review_sentiment.config import (
    HOUSEKEEPING_DAG_ID,
    PROJECT_ROOT,
    RETRAIN_DAG_ID,
    ROLLBACK_DAG_ID,
    SCORE_DAG_ID,
)
from tests.deploy import chart_model

# Every task, as task_ids.py names them (a task added to a DAG must get a pod here too).
EXPECTED_TASKS = {
    RETRAIN_DAG_ID: {
        task_ids.INGEST,
        task_ids.MONITOR_CHAMPION,
        task_ids.PREPROCESS,
        task_ids.TOKENIZE,
        task_ids.PREPARE_GRID,
        task_ids.TRAIN,
        task_ids.BASELINE,
        task_ids.REGISTER,
        task_ids.SMOKE_CHECK,
        task_ids.DECIDE,
        task_ids.GATE_PASSED,
        task_ids.GATE_REFUSED,
        task_ids.SMOKE_FAILED,
        task_ids.DRIFTED,
        task_ids.APPROVAL,
        task_ids.PROMOTE,
        task_ids.KEEP_CHAMPION,
    },
    SCORE_DAG_ID: {task_ids.RESOLVE_CHAMPION, task_ids.SCORE, task_ids.WATCH_PREDICTIONS},
    ROLLBACK_DAG_ID: {task_ids.ROLLBACK},
    HOUSEKEEPING_DAG_ID: {task_ids.HOUSEKEEPING},
}
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def _load_local_settings():
    """deploy/kubernetes/airflow_local_settings.py as a module (it is not on sys.path)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("k8s_local_settings", chart_model.LOCAL_SETTINGS_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def values() -> dict:
    return chart_model.load_values()


@pytest.fixture(scope="module")
def pods(values, tmp_path_factory) -> list[dict]:
    """The rendered pods, from a separate process configured as the chart configures the scheduler."""
    home = tmp_path_factory.mktemp("airflow-home")
    (home / "config").mkdir()
    shutil.copy(chart_model.LOCAL_SETTINGS_FILE, home / "config" / "airflow_local_settings.py")
    template = home / "pod_template_file.yaml"
    template.write_text(yaml.safe_dump(chart_model.pod_template(values)))
    repository, tag = chart_model.worker_image(values)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "SENTIMENT_K8S_"))}
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__EXECUTOR="KubernetesExecutor",
        AIRFLOW__CORE__DAGS_FOLDER=str(PROJECT_ROOT / "dags"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home}/airflow.db",
        AIRFLOW__KUBERNETES_EXECUTOR__POD_TEMPLATE_FILE=str(template),
        AIRFLOW__KUBERNETES_EXECUTOR__WORKER_CONTAINER_REPOSITORY=repository,
        AIRFLOW__KUBERNETES_EXECUTOR__WORKER_CONTAINER_TAG=tag,
        AIRFLOW__KUBERNETES_EXECUTOR__NAMESPACE="airflow",
        PYTHONPATH=os.pathsep.join(str(PROJECT_ROOT / p) for p in ("include", "dags", ".")),
    )
    output = home / "pods.json"
    done = subprocess.run(
        [sys.executable, "-m", "tests.deploy.render_pods", str(output)],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    rendered = json.loads(output.read_text())
    # Airflow itself loaded the file where the chart mounts it (so the hook applied is Airflow's).
    assert Path(rendered["local_settings"]) == home / "config" / "airflow_local_settings.py"
    return rendered["pods"]


def _by_task(pods: list[dict]) -> dict[tuple[str, str], dict]:
    return {(p["metadata"]["labels"]["dag_id"], p["metadata"]["labels"]["task_id"]): p for p in pods}


def _base(pod: dict) -> dict:
    [container] = [c for c in pod["spec"]["containers"] if c["name"] == "base"]
    return container


def test_every_task_of_the_four_dags_gets_a_pod(pods) -> None:
    rendered = {}
    for pod in pods:
        labels = pod["metadata"]["labels"]
        rendered.setdefault(labels["dag_id"], set()).add(labels["task_id"])
    assert rendered == EXPECTED_TASKS
    assert len(pods) == sum(len(t) for t in EXPECTED_TASKS.values())


def test_pods_are_valid_kubernetes_pods(pods) -> None:
    for pod in pods:
        assert (pod["apiVersion"], pod["kind"]) == ("v1", "Pod")
        kubernetes_validate.validate(pod, chart_model.KUBERNETES_VERSION, strict=True)
        assert len(pod["metadata"]["name"]) <= 63
        for key, value in pod["metadata"]["labels"].items():
            assert len(value) <= 63, (key, value)
            assert LABEL_VALUE.match(value), (key, value)


def test_the_validator_rejects_a_broken_pod(pods) -> None:
    """The schema check can fail: an unknown container field and a wrong type are refused."""
    broken = json.loads(json.dumps(pods[0]))
    _base(broken)["resource"] = {"limits": {"memory": "1Gi"}}  # misspelt `resources`
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, chart_model.KUBERNETES_VERSION, strict=True)
    broken = json.loads(json.dumps(pods[0]))
    _base(broken)["env"] = "MLFLOW_TRACKING_URI=http://mlflow"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, chart_model.KUBERNETES_VERSION, strict=True)


def test_pods_run_the_project_image_and_the_task(pods, values) -> None:
    repository, tag = chart_model.worker_image(values)
    for pod in pods:
        container = _base(pod)
        assert container["image"] == f"{repository}:{tag}"
        assert container["args"][:4] == [
            "python",
            "-m",
            "airflow.sdk.execution_time.execute_workload",
            "--json-string",
        ]
        workload = json.loads(container["args"][4])
        labels = pod["metadata"]["labels"]
        assert workload["ti"]["dag_id"] == labels["dag_id"]
        assert workload["ti"]["task_id"] == labels["task_id"]
        # The DAG bundle is the image's dags folder: no git-sync, no volume for it.
        assert workload["bundle_info"]["name"] == "dags-folder"
        assert workload["dag_rel_path"] == f"{labels['dag_id']}.py"
        assert not any("git" in v["name"] for v in pod["spec"]["volumes"])


def test_pods_carry_the_settings_and_only_secret_references(pods, values) -> None:
    plain = {e["name"]: e["value"] for e in values["env"]}
    for pod in pods:
        container = _base(pod)
        env = {e["name"]: e for e in container["env"]}
        for name, value in plain.items():
            assert env[name]["value"] == value, name
        for name, (secret, key) in chart_model.SECRET_ENV.items():
            assert env[name]["valueFrom"]["secretKeyRef"] == {"name": secret, "key": key}, name
            assert "value" not in env[name]
        assert {"secretRef": {"name": "sentiment-mlflow"}} in container["envFrom"]
        assert "MLFLOW_TRACKING_URI" not in env  # from the secret only
        assert env["AIRFLOW_IS_K8S_EXECUTOR_POD"]["value"] == "True"
        referenced = {e["valueFrom"]["secretKeyRef"]["name"] for e in env.values() if "valueFrom" in e}
        referenced |= {s["secretRef"]["name"] for s in container["envFrom"]}
        assert referenced <= chart_model.SECRETS
        # No credential as a literal: no URL with a user in a plain value.
        assert not any("@" in e.get("value", "") for e in env.values())


def test_pods_share_the_artifact_root(pods, values) -> None:
    root = plain_root = {e["name"]: e["value"] for e in values["env"]}["SENTIMENT_ARTIFACT_ROOT"]
    assert plain_root == "/opt/airflow/artifacts"
    for pod in pods:
        [volume] = [v for v in pod["spec"]["volumes"] if v["name"] == "artifacts"]
        assert volume["persistentVolumeClaim"]["claimName"] == "sentiment-artifacts"
        assert {"name": "artifacts", "mountPath": root} in _base(pod)["volumeMounts"]


def test_train_pods_get_their_cpu_and_memory_and_the_rest_the_default(pods, values) -> None:
    settings = _load_local_settings()
    train = settings.train_resources({})
    assert train == {"requests": {"cpu": "2", "memory": "3Gi"}, "limits": {"cpu": "4", "memory": "6Gi"}}
    by_task = _by_task(pods)
    assert _base(by_task[(RETRAIN_DAG_ID, task_ids.TRAIN)])["resources"] == train
    assert by_task[(RETRAIN_DAG_ID, task_ids.TRAIN)]["metadata"]["labels"]["map_index"] == "0"
    for key, pod in by_task.items():
        if key != (RETRAIN_DAG_ID, task_ids.TRAIN):
            assert _base(pod)["resources"] == values["workers"]["resources"], key


def test_the_hook_sizes_only_train_and_reads_overrides() -> None:
    from kubernetes.client import models as k8s

    settings = _load_local_settings()
    assert (settings.TRAIN_DAG_ID, settings.TRAIN_TASK_ID) == (RETRAIN_DAG_ID, task_ids.TRAIN)
    assert settings.__all__ == ["pod_mutation_hook"]

    def pod(dag_id: str, task_id: str) -> k8s.V1Pod:
        return k8s.V1Pod(
            metadata=k8s.V1ObjectMeta(labels={"dag_id": dag_id, "task_id": task_id}),
            spec=k8s.V1PodSpec(containers=[k8s.V1Container(name="base"), k8s.V1Container(name="sidecar")]),
        )

    other = pod(RETRAIN_DAG_ID, task_ids.TOKENIZE)
    settings.pod_mutation_hook(other)
    assert all(c.resources is None for c in other.spec.containers)
    train = pod(RETRAIN_DAG_ID, task_ids.TRAIN)
    settings.pod_mutation_hook(train)
    assert train.spec.containers[0].resources.limits["memory"] == "6Gi"
    assert train.spec.containers[1].resources is None  # a sidecar keeps its own figures
    assert (
        settings.train_resources({"SENTIMENT_K8S_TRAIN_MEMORY_LIMIT": "12Gi"})["limits"]["memory"] == "12Gi"
    )
    with pytest.raises(ValueError, match="SENTIMENT_K8S_TRAIN_CPU_LIMIT is set but empty"):
        settings.train_resources({"SENTIMENT_K8S_TRAIN_CPU_LIMIT": " "})
