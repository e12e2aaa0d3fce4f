"""Static checks of the compose stack: docker-compose.yaml, deploy/, Dockerfile, .env.example.

No Docker engine is needed: the files are parsed (PyYAML, line parsing, and compose's own
interpolation as `make stack` reads it) and deploy/gen-secrets.sh is run into a temporary folder
with a bare Python (no site-packages).
"""

from __future__ import annotations

import ast
import base64
import importlib
import os
import re
import shlex
import stat
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from scripts.local_stack import compose as local_compose
from tests.support.local_stack import bare_python, gen_secrets

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yaml"
AIRFLOW_ENV = ROOT / "deploy" / "airflow.env"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERFILE = ROOT / "Dockerfile"
MLFLOW_DOCKERFILE = ROOT / "deploy" / "mlflow" / "Dockerfile"
POSTGRES_INIT = ROOT / "deploy" / "postgres" / "init-databases.sh"
REVIEWS_INIT = ROOT / "deploy" / "postgres" / "init-reviews-database.sh"
RUN_LOCAL = ROOT / "scripts" / "run_local.sh"
AIRFLOW_INIT = ROOT / "deploy" / "airflow" / "airflow-init.sh"
GEN_SECRETS = ROOT / "deploy" / "gen-secrets.sh"
MLFLOW_AUTH_INI = ROOT / "deploy" / "mlflow" / "basic_auth.ini"

CORE_SERVICES = {
    "postgres",
    "mlflow",
    "mlflow-init",
    "airflow-init",
    "reviews-loader",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
}
CELERY_SERVICES = {"redis", "airflow-worker", "flower"}
# Every service of the Airflow image (reviews-loader runs the stage package from it).
AIRFLOW_SERVICES = {
    "airflow-init",
    "reviews-loader",
    "mlflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
    "flower",
}
ONE_SHOT = {"airflow-init", "reviews-loader", "mlflow-init"}
PUBLISHED = {"airflow-apiserver": 8080, "mlflow": 5000, "flower": 5555}
FAB_AUTH_MANAGER = "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager"
# The three Airflow logins of .env (airflow-init makes them) and their FAB roles.
LOGINS = {"ADMIN": "Admin", "OPERATOR": "Operator", "VIEWER": "Viewer"}
LOGIN_KEYS = [f"AIRFLOW_{who}_{part}" for who in LOGINS for part in ("USERNAME", "PASSWORD")]
REQUIRED_SECRETS = {
    "POSTGRES_PASSWORD",
    "AIRFLOW_DB_PASSWORD",
    "MLFLOW_DB_PASSWORD",
    "REVIEWS_DB_PASSWORD",
    "AIRFLOW_ADMIN_PASSWORD",
    "AIRFLOW_OPERATOR_PASSWORD",
    "AIRFLOW_VIEWER_PASSWORD",
    "FLOWER_PASSWORD",
    "AIRFLOW__CORE__FERNET_KEY",
    "AIRFLOW__API_AUTH__JWT_SECRET",
    "AIRFLOW__API__SECRET_KEY",
}
PIPELINE_VARIABLES = {
    "REVIEWS_PATH",
    "SENTIMENT_ARTIFACT_ROOT",
    "MLFLOW_TRACKING_URI",
    "SENTIMENT_EXPERIMENT",
    "SENTIMENT_MODEL_NAME",
    "SENTIMENT_SCHEDULE",
}
# Literal (non-interpolated) environment values allowed in the compose file: process plumbing of
# one container, not configuration (the Airflow image's entrypoint: dumb-init's signalling, and
# its wait for Airflow's database, which reviews-loader does not use; where the MLflow container
# finds the auth app's ini, which compose mounts there).
LITERAL_ENV_ALLOWED = {"DUMB_INIT_SETSID", "CONNECTION_CHECK_MAX_COUNT", "MLFLOW_AUTH_CONFIG_PATH"}
# The Airflow connection of the stack's reviews table, and who holds it: the services that run
# tasks (LocalExecutor: the scheduler; Celery: the workers) and the loader that fills the table.
REVIEWS_CONN = "AIRFLOW_CONN_REVIEWS_DB"
REVIEWS_CONN_HOLDERS = {"airflow-scheduler", "airflow-worker", "reviews-loader", "airflow-cli"}

SECRET_NAME = re.compile(r"PASSWORD|PASSWD|SECRET|FERNET|TOKEN|BASIC_AUTH|PRIVATE_KEY")
# Settings that name where a secret is kept, not the secret itself.
SECRET_LOCATION_SUFFIXES = ("_FILE", "_PATH")
# ${NAME}, ${NAME:-default}, ${NAME:?message}...; $${NAME} is compose's escape for a literal $.
INTERPOLATION = re.compile(r"(?<!\$)\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<op>:?[-?+])?(?P<arg>[^}]*)\}")
CREDENTIAL_SETTING = re.compile(
    r"(?i)(?P<key>\w*(?:password|secret|fernet_key)\w*)\s*[=:][ \t]*(?P<value>\S*)"
)
URL_WITH_PASSWORD = re.compile(r"[a-z][a-z0-9+.-]*://[^\s/@:'\"]+:(?P<password>[^\s/@'\"]+)@")
ENV_LINE = re.compile(r"^(?P<key>[A-Za-z_][A-Za-z0-9_]*)=(?P<value>.*)$")


# --- helpers ---------------------------------------------------------------------------------------
def _read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of an env file; blank and comment lines skipped."""
    entries: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = ENV_LINE.match(line)
        assert match, f"{path.name}:{number} is not a KEY=VALUE line: {line!r}"
        assert match["key"] not in entries, f"{path.name}:{number} repeats {match['key']}"
        entries[match["key"]] = match["value"]
    return entries


def _strings(node: object) -> list[str]:
    """Every string value (not key) in a parsed YAML tree."""
    if isinstance(node, dict):
        return [s for value in node.values() for s in _strings(value)]
    if isinstance(node, list):
        return [s for value in node for s in _strings(value)]
    return [node] if isinstance(node, str) else []


def _environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def _env_files(service: dict) -> list[str]:
    files = service.get("env_file") or []
    files = [files] if isinstance(files, str) else files
    return [f["path"] if isinstance(f, dict) else f for f in files]


def _args(command: str | list[str]) -> list[str]:
    return shlex.split(command) if isinstance(command, str) else [str(a) for a in command]


def _option(args: list[str], name: str) -> str | None:
    """Value of ``--name=value`` or ``--name value`` in a command line."""
    for i, arg in enumerate(args):
        if arg.startswith(f"{name}="):
            return arg.split("=", 1)[1]
        if arg == name and i + 1 < len(args):
            return args[i + 1]
    return None


def _port_bindings(service: dict) -> list[tuple[str | None, int]]:
    """(host_ip, container_port) of each published port, short or long syntax."""
    bindings = []
    for port in service.get("ports") or []:
        if isinstance(port, dict):
            bindings.append((port.get("host_ip"), int(port["target"])))
            continue
        parts = str(port).split("/")[0].split(":")
        host_ip = ":".join(parts[:-2]) if len(parts) >= 3 else None
        bindings.append((host_ip, int(parts[-1])))
    return bindings


def _strip_references(value: str) -> str:
    return INTERPOLATION.sub("", value)


def _is_secret(name: str) -> bool:
    return bool(SECRET_NAME.search(name)) and not name.endswith(SECRET_LOCATION_SUFFIXES)


def _run_gen_secrets(*args: str) -> subprocess.CompletedProcess[str]:
    """deploy/gen-secrets.sh with the first python3 outside the virtualenv (the script adds -S)."""
    env = {**os.environ, "PYTHON": bare_python()}
    env.pop("AIRFLOW_ADMIN_USERNAME", None)
    return subprocess.run(
        ["bash", str(GEN_SECRETS), *args], capture_output=True, text=True, env=env, timeout=60, check=False
    )


def _required_by(script: Path) -> set[str]:
    """Variables a deploy script refuses to run without (``: "${X:?`` or ``[ -z "${X:-}" ]``)."""
    text = script.read_text()
    return set(re.findall(r':\s+"\$\{(\w+):\?', text)) | set(re.findall(r'-z "\$\{(\w+):-\}"', text))


# --- fixtures --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose: dict) -> dict[str, dict]:
    return compose["services"]


@pytest.fixture(scope="module")
def compose_variables(compose: dict) -> dict[str, set[str]]:
    """Every variable the compose file interpolates, with the operators it is used with."""
    found: dict[str, set[str]] = {}
    for text in _strings(compose):
        for match in INTERPOLATION.finditer(text):
            found.setdefault(match["name"], set()).add(match["op"] or "")
    return found


@pytest.fixture(scope="module")
def airflow_env() -> dict[str, str]:
    return _read_env_file(AIRFLOW_ENV)


@pytest.fixture(scope="module")
def env_example() -> dict[str, str]:
    return _read_env_file(ENV_EXAMPLE)


# --- services, health, dependencies -------------------------------------------------------------------
def test_expected_services_exist_and_celery_ones_are_profiled(services: dict[str, dict]) -> None:
    missing = (CORE_SERVICES | CELERY_SERVICES) - services.keys()
    assert not missing, f"services missing from docker-compose.yaml: {sorted(missing)}"
    for name in CORE_SERVICES:
        assert not services[name].get("profiles"), f"{name} must start without a profile"
    for name in CELERY_SERVICES:
        assert services[name].get("profiles") == ["celery"], f"{name} must carry profiles: [celery]"


@pytest.mark.parametrize("name", sorted((CORE_SERVICES | CELERY_SERVICES) - ONE_SHOT))
def test_long_running_service_has_a_healthcheck(services: dict[str, dict], name: str) -> None:
    check = services[name].get("healthcheck") or {}
    assert not check.get("disable"), f"{name}: healthcheck disabled"
    test = check.get("test")
    assert isinstance(test, list), f"{name}: healthcheck.test missing or not a list"
    assert test[0] in {"CMD", "CMD-SHELL"}, f"{name}: healthcheck.test must start with CMD or CMD-SHELL"
    assert len(test) > 1, f"{name}: healthcheck.test has no command"


@pytest.mark.parametrize("name", sorted(ONE_SHOT))
def test_init_job_is_one_shot(services: dict[str, dict], name: str) -> None:
    init = services[name]
    assert str(init.get("restart")) == "no", f"{name} must not be restarted after it completes"
    assert "healthcheck" not in init


@pytest.mark.parametrize("name", sorted(CORE_SERVICES | CELERY_SERVICES))
def test_depends_on_waits_on_conditions(services: dict[str, dict], name: str) -> None:
    depends_on = services[name].get("depends_on") or {}
    assert isinstance(depends_on, dict), f"{name}: depends_on must be a mapping with conditions"
    for dep, spec in depends_on.items():
        assert dep in services, f"{name} depends on unknown service {dep}"
        expected = "service_completed_successfully" if dep in ONE_SHOT else "service_healthy"
        assert (spec or {}).get("condition") == expected, f"{name} -> {dep}: condition must be {expected}"


@pytest.mark.parametrize("name", sorted(AIRFLOW_SERVICES - ONE_SHOT))
def test_airflow_services_wait_for_init_and_postgres(services: dict[str, dict], name: str) -> None:
    depends_on = services[name]["depends_on"]
    assert "airflow-init" in depends_on
    assert "postgres" in depends_on


def test_redis_dependency_is_optional_outside_the_celery_profile(services: dict[str, dict]) -> None:
    for name in AIRFLOW_SERVICES - ONE_SHOT:
        redis = services[name]["depends_on"].get("redis")
        if name in CELERY_SERVICES:
            assert redis is not None, f"{name} must wait for redis"
        if redis is not None and name not in CELERY_SERVICES:
            assert redis.get("required") is False, f"{name}: redis exists only with the celery profile"


@pytest.mark.parametrize("name", ["airflow-scheduler", "airflow-worker"])
def test_task_runners_wait_for_mlflow_and_the_api_server(services: dict[str, dict], name: str) -> None:
    depends_on = services[name]["depends_on"]
    assert depends_on["mlflow"]["condition"] == "service_healthy"
    assert depends_on["airflow-apiserver"]["condition"] == "service_healthy"


# --- secrets ---------------------------------------------------------------------------------------
def test_secrets_are_required_variables_without_defaults(compose_variables: dict[str, set[str]]) -> None:
    missing = REQUIRED_SECRETS - compose_variables.keys()
    assert not missing, f"secrets not taken from .env: {sorted(missing)}"
    for name, ops in compose_variables.items():
        if _is_secret(name):
            assert ops == {":?"}, f"${{{name}}} must be written ${{{name}:?message}} (no default, no empty)"


def test_secret_environment_values_are_only_references(services: dict[str, dict]) -> None:
    checked = 0
    for name, service in services.items():
        for key, value in _environment(service).items():
            if _is_secret(key):
                checked += 1
                leftover = _strip_references(value)
                assert not re.search(r"[A-Za-z0-9]", leftover), f"{name}: {key} holds a literal: {value!r}"
    assert checked >= 5, "expected the secrets to be passed through the services' environment"


@pytest.mark.parametrize(
    "path", [COMPOSE_FILE, AIRFLOW_ENV, ENV_EXAMPLE, MLFLOW_AUTH_INI], ids=lambda p: p.name
)
def test_no_literal_default_credentials(path: Path) -> None:
    # ${NAME:?message} references are fine; what is left must hold no credential.
    text = INTERPOLATION.sub("${}", path.read_text())
    for pair in ("airflow:airflow", "mlflow:mlflow", "postgres:postgres", "admin:admin"):
        assert pair not in text.lower(), f"{path.name} contains the default credential {pair!r}"
    for match in URL_WITH_PASSWORD.finditer(text):
        assert match["password"].startswith("${"), f"{path.name}: password in URL {match.group(0)!r}"
    for match in CREDENTIAL_SETTING.finditer(text):
        value = match["value"].strip("'\"")
        if match["key"].upper().endswith(SECRET_LOCATION_SUFFIXES):
            continue
        assert value == "" or value.startswith(("${", "$${")), f"{path.name}: literal {match.group(0)!r}"


def test_env_example_holds_placeholders_only(env_example: dict[str, str]) -> None:
    secrets = {key: value for key, value in env_example.items() if _is_secret(key)}
    assert secrets.keys() >= REQUIRED_SECRETS
    filled = sorted(key for key, value in secrets.items() if value)
    assert not filled, f".env.example must leave secrets empty (compose then refuses to start): {filled}"


def test_env_example_documents_every_compose_variable(
    env_example: dict[str, str], compose_variables: dict[str, set[str]]
) -> None:
    missing = compose_variables.keys() - env_example.keys()
    assert not missing, f".env.example lacks {sorted(missing)}"


# --- network exposure ---------------------------------------------------------------------------------
def test_published_ports_bind_loopback_only(services: dict[str, dict]) -> None:
    for name, service in services.items():
        assert service.get("network_mode") != "host", f"{name} must not use the host network"
        for host_ip, target in _port_bindings(service):
            assert host_ip == "127.0.0.1", f"{name}: port {target} must be published on 127.0.0.1 only"


@pytest.mark.parametrize(("name", "port"), sorted(PUBLISHED.items()))
def test_ui_ports_are_published(services: dict[str, dict], name: str, port: int) -> None:
    assert ("127.0.0.1", port) in _port_bindings(services[name])


@pytest.mark.parametrize("name", ["postgres", "redis"])
def test_datastores_publish_nothing(services: dict[str, dict], name: str) -> None:
    assert not services[name].get("ports"), f"{name} must not publish a port"


# --- images ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "path",
    [COMPOSE_FILE, DOCKERFILE, MLFLOW_DOCKERFILE, AIRFLOW_ENV, ENV_EXAMPLE],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_no_pip_additional_requirements(path: Path) -> None:
    assert "_PIP_ADDITIONAL_REQUIREMENTS" not in path.read_text()


def test_airflow_dockerfile_matches_the_lock() -> None:
    instructions = [
        line.strip() for line in DOCKERFILE.read_text().splitlines() if line.strip() and line[0] != "#"
    ]
    assert instructions[0].startswith("FROM apache/airflow:slim-3.3.2-"), instructions[0]
    pin = re.search(r"^apache-airflow==(\S+)", (ROOT / "requirements.txt").read_text(), re.M)
    assert pin, "requirements.txt must pin apache-airflow"
    assert instructions[0].split()[1].split(":")[1].startswith(f"slim-{pin[1]}-"), "image tag != lock pin"
    text = "\n".join(instructions)
    assert re.search(r"pip install .*-r \S*requirements\.txt && pip check$", text, re.M), (
        "the image must install the lock and fail on a conflict"
    )
    pythonpath = re.search(r"^ENV PYTHONPATH=(\S+)", text, re.M)
    assert pythonpath, "the image must set PYTHONPATH"
    assert "/opt/airflow/include" in pythonpath[1].split(":")
    for folder in ("dags", "plugins", "include"):
        assert re.search(rf"^COPY .*\b{folder}/? /opt/airflow/{folder}/?$", text, re.M), (
            f"{folder}/ not copied"
        )


def test_airflow_services_share_one_image(services: dict[str, dict]) -> None:
    images = {services[name].get("image") for name in AIRFLOW_SERVICES}
    assert len(images) == 1, f"Airflow services use several images: {images}"
    assert None not in images
    for name in AIRFLOW_SERVICES:
        build = services[name].get("build") or {}
        assert build.get("context") == ".", name
        assert build.get("dockerfile", "Dockerfile") == "Dockerfile", name


def test_mlflow_image_installs_locked_mlflow_and_psycopg2(services: dict[str, dict]) -> None:
    build = services["mlflow"]["build"]
    assert (ROOT / build["context"] / build["dockerfile"]).resolve() == MLFLOW_DOCKERFILE
    text = MLFLOW_DOCKERFILE.read_text()
    assert text.lstrip().startswith("#") or text.startswith("FROM")
    assert re.search(r"^FROM python:3\.11-slim\b", text, re.M)
    install = re.search(r"pip install ([^\n\\]+)", text)
    assert install, "no pip install in deploy/mlflow/Dockerfile"
    args = [a.strip('"') for a in install[1].split()]
    assert "mlflow[auth]" in args, "the basic-auth app needs mlflow's auth extra (Flask-WTF)"
    assert "psycopg2-binary" in args
    assert "requirements.txt" in " ".join(args), "versions must come from requirements.txt (-c)"


# --- MLflow server ---------------------------------------------------------------------------------
def test_mlflow_server_command(services: dict[str, dict]) -> None:
    mlflow = services["mlflow"]
    args = _args(mlflow["command"])
    assert args[:2] == ["mlflow", "server"]
    assert "--serve-artifacts" in args
    assert _option(args, "--host") == "0.0.0.0"
    destination = _option(args, "--artifacts-destination")
    assert destination == "/mlartifacts"
    assert any(v.endswith(f":{destination}") and not v.startswith((".", "/")) for v in mlflow["volumes"]), (
        "the artifact destination must be a named volume"
    )
    hosts = (_option(args, "--allowed-hosts") or "").split(",")
    for host in ("mlflow", "localhost", "127.0.0.1"):
        assert host in hosts, f"--allowed-hosts lacks {host}: {hosts}"
    # The Host header carries the port: "mlflow:5000" must match too.
    assert {"mlflow:*", "mlflow:5000"} & set(hosts), hosts
    backend = urlsplit(_option(args, "--backend-store-uri") or "")
    assert backend.scheme.startswith("postgresql")
    assert backend.hostname == "postgres"
    assert backend.password is None, "the backend URI must not carry a password (PGPASSWORD does)"
    assert _environment(mlflow)["PGPASSWORD"].startswith("${MLFLOW_DB_PASSWORD:?")


# --- one source of non-secret configuration --------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(AIRFLOW_SERVICES))
def test_airflow_services_read_the_shared_env_file(services: dict[str, dict], name: str) -> None:
    assert _env_files(services[name]) == ["deploy/airflow.env"]
    assert AIRFLOW_ENV.is_file()


def test_airflow_env_is_plain_key_value(airflow_env: dict[str, str]) -> None:
    for key, value in airflow_env.items():
        assert value, f"{key}: empty value"
        assert value == value.strip(), f"{key}: blanks around the value"
        assert not re.search(r"[\"'$]", value), f"{key}: quotes and $ are read differently by env parsers"
        assert " #" not in value, f"{key}: inline comments are not portable"


def test_airflow_env_holds_no_secrets(airflow_env: dict[str, str]) -> None:
    secret_keys = sorted(key for key in airflow_env if _is_secret(key))
    assert not secret_keys, f"secrets belong in .env: {secret_keys}"
    for key, value in airflow_env.items():
        if "://" in value:
            assert urlsplit(value).password is None, f"{key} carries a password"


def test_compose_does_not_repeat_shared_settings(
    services: dict[str, dict], airflow_env: dict[str, str]
) -> None:
    for name, service in services.items():
        for key, value in _environment(service).items():
            assert key not in airflow_env, f"{name}: {key} is also in deploy/airflow.env"
            if key not in LITERAL_ENV_ALLOWED:
                assert INTERPOLATION.search(value), f"{name}: {key}={value!r} belongs in deploy/airflow.env"


def test_airflow_env_addresses_compose_services(
    services: dict[str, dict], airflow_env: dict[str, str]
) -> None:
    urls = {key: urlsplit(value) for key, value in airflow_env.items() if "://" in value}
    assert {"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "MLFLOW_TRACKING_URI", "AIRFLOW__CELERY__BROKER_URL"} <= (
        urls.keys()
    )
    for key, url in urls.items():
        assert url.hostname in services, f"{key}: {url.hostname} is not a compose service"
    assert urls["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].hostname == "postgres"
    assert urls["MLFLOW_TRACKING_URI"].hostname == "mlflow"
    assert urls["AIRFLOW__CELERY__BROKER_URL"].hostname == "redis"


def test_airflow_env_settings(airflow_env: dict[str, str]) -> None:
    assert airflow_env["AIRFLOW__CORE__LOAD_EXAMPLES"].lower() == "false"
    assert "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION" in airflow_env
    assert airflow_env["AIRFLOW__CORE__AUTH_MANAGER"] == FAB_AUTH_MANAGER
    assert airflow_env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"].startswith("http://airflow-apiserver:8080/")
    assert airflow_env["AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK"].lower() == "true"
    assert "AIRFLOW__CORE__EXECUTOR" not in airflow_env, "the executor is switched by compose from .env"
    missing = PIPELINE_VARIABLES - airflow_env.keys()
    assert not missing, f"pipeline settings missing from deploy/airflow.env: {sorted(missing)}"


def test_pipeline_names_match_the_package_defaults(airflow_env: dict[str, str]) -> None:
    from review_sentiment import config

    assert airflow_env["SENTIMENT_MODEL_NAME"] == config.REGISTERED_MODEL_NAME
    assert airflow_env["SENTIMENT_EXPERIMENT"] == config.EXPERIMENT_NAME
    assert airflow_env["SENTIMENT_SCHEDULE"] == config.DEFAULT_SCHEDULE


def test_executor_defaults_to_local_and_is_switched_from_dot_env(
    compose: dict, env_example: dict[str, str]
) -> None:
    common = _environment(compose["x-airflow-common"])
    # The project's LocalExecutor (plugins/sentiment_executor.py), importable from plugins/.
    assert common["AIRFLOW__CORE__EXECUTOR"] == "${AIRFLOW__CORE__EXECUTOR:-sentiment_executor.LocalExecutor}"
    assert env_example["AIRFLOW__CORE__EXECUTOR"] == "sentiment_executor.LocalExecutor"
    assert (ROOT / "plugins" / "sentiment_executor.py").is_file()
    text = ENV_EXAMPLE.read_text()
    assert "COMPOSE_PROFILES=celery" in text
    assert "AIRFLOW__CORE__EXECUTOR=CeleryExecutor" in text


# --- volumes and the database init script ---------------------------------------------------------------
def test_volumes_are_strings_and_named_volumes_are_declared(compose: dict, services: dict[str, dict]) -> None:
    declared = set(compose.get("volumes") or {})
    for name, service in services.items():
        for volume in service.get("volumes") or []:
            assert isinstance(volume, str), f"{name}: volume entry parsed as {type(volume).__name__}"
            source = volume.split(":", 1)[0]
            if not source.startswith((".", "/", "$", '"')):
                assert source in declared, f"{name}: named volume {source} is not declared"


def test_airflow_services_mount_the_review_data_read_only(services: dict[str, dict]) -> None:
    for name in ("airflow-scheduler", "airflow-worker", "airflow-init", "reviews-loader"):
        mounts = [v for v in services[name]["volumes"] if v.endswith(":/opt/airflow/data:ro")]
        assert len(mounts) == 1, name
        assert mounts[0].startswith("${SENTIMENT_DATA_DIR:?"), name


def test_postgres_creates_both_databases_on_first_start(services: dict[str, dict]) -> None:
    postgres = services["postgres"]
    assert postgres["image"] == "postgres:16"
    assert "./deploy/postgres:/docker-entrypoint-initdb.d:ro" in postgres["volumes"]
    env = _environment(postgres)
    for key in ("POSTGRES_PASSWORD", "AIRFLOW_DB_PASSWORD", "MLFLOW_DB_PASSWORD"):
        assert env[key] == f"${{{key}:?run deploy/gen-secrets.sh}}", key
    script = POSTGRES_INIT.read_text()
    assert POSTGRES_INIT.stat().st_mode & stat.S_IXUSR, "the entrypoint runs it only if executable"
    for role in ("airflow", "mlflow"):
        assert re.search(rf"CREATE ROLE {role} LOGIN PASSWORD :'{role}_password'", script)
        assert f"CREATE DATABASE {role} OWNER {role}" in script


def test_database_names_agree_across_files(services: dict[str, dict], airflow_env: dict[str, str]) -> None:
    airflow = urlsplit(airflow_env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    mlflow = urlsplit(_option(_args(services["mlflow"]["command"]), "--backend-store-uri") or "")
    reviews = urlsplit(INTERPOLATION.sub("x", _environment(services["airflow-scheduler"])[REVIEWS_CONN]))
    for url, script in ((airflow, POSTGRES_INIT), (mlflow, POSTGRES_INIT), (reviews, REVIEWS_INIT)):
        text = script.read_text()
        assert f"CREATE DATABASE {url.path.lstrip('/')} OWNER {url.username}" in text, url.geturl()


# --- the reviews database -----------------------------------------------------------------------------
def test_postgres_creates_the_reviews_role_and_database_on_first_start(services: dict[str, dict]) -> None:
    postgres = services["postgres"]
    # In the folder the postgres image runs on a volume's first start (mounted above).
    mount = next(v for v in postgres["volumes"] if v.endswith(":/docker-entrypoint-initdb.d:ro"))
    assert (ROOT / mount.split(":")[0]).resolve() == REVIEWS_INIT.parent
    assert REVIEWS_INIT.stat().st_mode & stat.S_IXUSR, "the entrypoint runs it only if executable"
    assert _environment(postgres)["REVIEWS_DB_PASSWORD"].startswith("${REVIEWS_DB_PASSWORD:?")
    script = REVIEWS_INIT.read_text()
    assert '--set reviews_password="$REVIEWS_DB_PASSWORD"' in script
    assert "CREATE ROLE reviews LOGIN" in script
    assert "ALTER ROLE reviews LOGIN PASSWORD :'reviews_password'" in script, (
        "the password only as a psql variable"
    )
    assert "CREATE DATABASE reviews OWNER reviews" in script
    # Apart from Airflow's and MLflow's: no other role may connect to it (nor reviews to theirs).
    assert "REVOKE ALL ON DATABASE reviews FROM PUBLIC" in script
    for database in ("airflow", "mlflow"):
        assert f"REVOKE ALL ON DATABASE {database} FROM PUBLIC" in POSTGRES_INIT.read_text()
    assert not re.search(r"SUPERUSER|CREATEDB|CREATEROLE|GRANT", script), "a plain login role"


def test_reviews_loader_seeds_the_table_once_before_the_task_runners_start(services: dict[str, dict]) -> None:
    loader = services["reviews-loader"]
    args = _args(loader["command"])
    assert args[:4] == ["python", "-m", "review_sentiment.reviews_loader", "seed"]
    # The same URI as the task runners' connection, read from the environment: the loader fills
    # the table the DAG reads, and the password stays off the command line.
    assert _option(args, "--source-env") == REVIEWS_CONN
    assert _option(args, "--table") == "reviews"
    assert _option(args, "--weeks") == "12"
    assert _option(args, "--path") is None, "the review file is REVIEWS_PATH of deploy/airflow.env"
    assert loader["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    for name in ("airflow-scheduler", "airflow-worker"):
        assert services[name]["depends_on"]["reviews-loader"] == {
            "condition": "service_completed_successfully"
        }
    env = _environment(loader)
    # Not the shared Airflow environment: the job needs none of its secrets.
    assert set(env) == {REVIEWS_CONN, "CONNECTION_CHECK_MAX_COUNT"}, env
    assert env["CONNECTION_CHECK_MAX_COUNT"] == "0", "the image would first wait for Airflow's database"


def test_the_reviews_connection_comes_from_the_secrets_file(
    services: dict[str, dict], generated_env: dict[str, str]
) -> None:
    holders = {name for name, service in services.items() if REVIEWS_CONN in _environment(service)}
    assert holders == REVIEWS_CONN_HOLDERS
    values = {_environment(services[name])[REVIEWS_CONN] for name in holders}
    assert len(values) == 1, f"the holders of {REVIEWS_CONN} name different databases: {values}"
    value = values.pop()
    # The password is the .env secret, required, and nothing else (urlsplit cannot read ${...:?...}).
    references = list(INTERPOLATION.finditer(value))
    assert [(m["name"], m["op"]) for m in references] == [("REVIEWS_DB_PASSWORD", ":?")], value
    url = urlsplit(INTERPOLATION.sub("REFERENCE", value))
    assert url.password == "REFERENCE", f"{REVIEWS_CONN}: the reference must be the whole password"
    assert (url.scheme, url.username, url.hostname, url.port, url.path) == (
        "postgresql", "reviews", "postgres", 5432, "/reviews",
    )  # fmt: skip
    # As compose interpolates it from a generated .env: the reviews role's own password.
    for name in sorted(holders):
        service = local_compose.load([COMPOSE_FILE], generated_env)["services"][name]
        uri = local_compose.environment(service, ROOT, generated_env)[REVIEWS_CONN]
        assert urlsplit(uri).password == generated_env["REVIEWS_DB_PASSWORD"], name
    others = {
        generated_env[key] for key in ("POSTGRES_PASSWORD", "AIRFLOW_DB_PASSWORD", "MLFLOW_DB_PASSWORD")
    }
    assert generated_env["REVIEWS_DB_PASSWORD"] not in others


def test_an_older_env_file_without_the_reviews_secret_names_the_fix(generated_env: dict[str, str]) -> None:
    older = {key: value for key, value in generated_env.items() if key != "REVIEWS_DB_PASSWORD"}
    with pytest.raises(
        local_compose.ComposeError,
        match=r"REVIEWS_DB_PASSWORD is missing a value: run deploy/gen-secrets.sh --add-missing",
    ):
        local_compose.load([COMPOSE_FILE], older)


def test_the_stack_reads_the_reviews_table_and_make_run_the_file(
    services: dict[str, dict], airflow_env: dict[str, str]
) -> None:
    from review_sentiment.config import Settings
    from review_sentiment.sources import check_source

    # The stack: the DAG's source param defaults to the table that reviews-loader fills.
    source = airflow_env["SENTIMENT_SOURCE"]
    assert check_source(source, []) == (
        "table",
        _option(_args(services["reviews-loader"]["command"]), "--table"),
    )
    assert Settings.from_env(airflow_env).source == "postgres:reviews"
    # `make run`: neither sets SENTIMENT_SOURCE nor reads deploy/airflow.env, so it keeps the file.
    text = RUN_LOCAL.read_text()
    assert "SENTIMENT_SOURCE" not in text
    assert "airflow.env" not in text
    assert Settings.from_env({"REVIEWS_PATH": "/data/reviews.csv.gz"}).source == "/data/reviews.csv.gz"


@pytest.mark.parametrize(
    "script", [POSTGRES_INIT, REVIEWS_INIT, AIRFLOW_INIT, GEN_SECRETS, RUN_LOCAL], ids=lambda p: p.name
)
def test_shell_scripts_parse(script: Path) -> None:
    result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


# --- deploy/gen-secrets.sh --------------------------------------------------------------------------
def test_gen_secrets_defines_every_compose_variable_and_differs_between_runs(
    tmp_path: Path, compose_variables: dict[str, set[str]]
) -> None:
    runs = []
    for run in ("first", "second"):
        out = tmp_path / run / ".env"
        out.parent.mkdir()
        result = _run_gen_secrets("--output", str(out))
        assert result.returncode == 0, result.stderr
        assert stat.S_IMODE(out.stat().st_mode) == 0o600, "the .env must be readable by its owner only"
        assert sorted(p.name for p in out.parent.iterdir()) == [".env"], "temporary files left behind"
        runs.append(_read_env_file(out))
    first, second = runs
    # Optional settings (``${VAR:-}``, e.g. the mail recipients) may stay empty; the rest may not.
    required = [name for name, ops in compose_variables.items() if ops != {":-"}]
    for env in runs:
        empty = sorted(name for name in required if not env.get(name))
        assert not empty, f"generated .env leaves compose variables unset or empty: {empty}"
    for name in REQUIRED_SECRETS:
        assert first[name] != second[name], f"{name} is the same on two runs"
    for name in ("POSTGRES_PASSWORD", "AIRFLOW_DB_PASSWORD", "MLFLOW_DB_PASSWORD", "REVIEWS_DB_PASSWORD",
                 "AIRFLOW_ADMIN_PASSWORD", "AIRFLOW_OPERATOR_PASSWORD", "AIRFLOW_VIEWER_PASSWORD",
                 "FLOWER_PASSWORD"):  # fmt: skip
        assert re.fullmatch(r"[0-9a-f]{32,}", first[name]), f"{name} must be long and URL-safe"
    assert len(base64.urlsafe_b64decode(first["AIRFLOW__CORE__FERNET_KEY"])) == 32
    assert first["AIRFLOW__CORE__EXECUTOR"] == "sentiment_executor.LocalExecutor"


def test_gen_secrets_refuses_to_overwrite_unless_forced(tmp_path: Path) -> None:
    out = tmp_path / ".env"
    out.write_text("KEEP=me\n")
    refused = _run_gen_secrets("--output", str(out))
    assert refused.returncode != 0
    assert "--force" in refused.stderr
    assert out.read_text() == "KEEP=me\n"

    forced = _run_gen_secrets("--force", "--output", str(out))
    assert forced.returncode == 0, forced.stderr
    assert "KEEP" not in _read_env_file(out)
    assert _read_env_file(out)["AIRFLOW__CORE__FERNET_KEY"]


def test_gen_secrets_adds_only_what_an_older_env_file_lacks(tmp_path: Path) -> None:
    """An .env from before the reviews database keeps every value; only REVIEWS_DB_PASSWORD is added."""
    out = tmp_path / ".env"
    assert _run_gen_secrets("--output", str(out)).returncode == 0
    older = "".join(line for line in out.read_text().splitlines(True) if not line.startswith("REVIEWS_DB_"))
    out.write_text(older)
    added = _run_gen_secrets("--add-missing", "--output", str(out))
    assert added.returncode == 0, added.stderr
    assert "added REVIEWS_DB_PASSWORD" in added.stderr
    text = out.read_text()
    assert text.startswith(older), "an existing line changed"
    before = {line.split("=", 1)[0] for line in older.splitlines() if line and not line.startswith("#")}
    assert _read_env_file(out).keys() - before == {"REVIEWS_DB_PASSWORD"}
    assert re.fullmatch(r"[0-9a-f]{48}", _read_env_file(out)["REVIEWS_DB_PASSWORD"])
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == [".env"], "temporary files left behind"
    again = _run_gen_secrets("--add-missing", "--output", str(out))
    assert again.returncode == 0, again.stderr
    assert out.read_text() == text, "a second --add-missing changed the file"
    both = _run_gen_secrets("--add-missing", "--force", "--output", str(out))
    assert both.returncode == 2
    assert out.read_text() == text


# --- least privilege: the JWT secret, MLflow's basic auth -----------------------------------
JWT = "AIRFLOW__API_AUTH__JWT_SECRET"
# Where task tokens are checked (API server) or signed (the scheduler's executor, LocalExecutor or
# Celery). Celery workers run what the scheduler signed; the DAG processor and triggerer talk to
# an in-process Execution API without tokens.
JWT_SERVICES = {"airflow-apiserver", "airflow-scheduler"}


def test_jwt_secret_only_where_tokens_are_signed_or_checked(compose: dict, services: dict[str, dict]) -> None:
    assert JWT not in _environment(compose["x-airflow-common"]), "the JWT secret must not be shared by all"
    holders = {name for name, service in services.items() if JWT in _environment(service)}
    assert holders == JWT_SERVICES
    for name in JWT_SERVICES:
        assert _environment(services[name])[JWT] == f"${{{JWT}:?run deploy/gen-secrets.sh}}"
        # Still every shared setting besides it.
        assert "AIRFLOW__CORE__FERNET_KEY" in _environment(services[name])


# MLflow's basic-auth app, on in the base file (no override): the admin and the Flask key from
# .env, the user store on its own volume, the service user made by mlflow-init and used by the
# services that run tasks (tests/stack/test_mlflow_auth.py checks it against the running stack).
MLFLOW_LOGIN_HOLDERS = {"airflow-scheduler", "airflow-worker", "airflow-cli"}
MLFLOW_SERVICE_LOGIN = {
    "MLFLOW_TRACKING_USERNAME": "${MLFLOW_SERVICE_USERNAME:?run deploy/gen-secrets.sh --add-missing}",
    "MLFLOW_TRACKING_PASSWORD": "${MLFLOW_SERVICE_PASSWORD:?run deploy/gen-secrets.sh --add-missing}",
}


def test_mlflow_runs_the_basic_auth_app_by_default(compose: dict, services: dict[str, dict]) -> None:
    mlflow = services["mlflow"]
    assert "--app-name=basic-auth" in _args(mlflow["command"])
    assert not list(MLFLOW_DOCKERFILE.parent.glob("*.y*ml")), "no optional compose override any more"
    env = _environment(mlflow)
    assert env["MLFLOW_AUTH_CONFIG_PATH"] == "/etc/mlflow/basic_auth.ini"
    assert "./deploy/mlflow/basic_auth.ini:/etc/mlflow/basic_auth.ini:ro" in mlflow["volumes"]
    for key, name in (("MLFLOW_AUTH_ADMIN_USERNAME", "MLFLOW_ADMIN_USERNAME"),
                      ("MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_ADMIN_PASSWORD"),
                      ("MLFLOW_FLASK_SERVER_SECRET_KEY", "MLFLOW_FLASK_SERVER_SECRET_KEY")):  # fmt: skip
        match = INTERPOLATION.fullmatch(env[key])
        assert match, f"{key} must come from .env"
        assert match["name"] == name, f"{key} must come from .env's {name}"
        assert match["op"] == ":?", f"{key}: no default, no empty value"
    # The ini's relative sqlite URI resolves in the working folder: the user store's volume.
    assert mlflow["working_dir"] == "/mlauth"
    assert "mlflow-auth:/mlauth" in mlflow["volumes"]
    assert "mlflow-auth" in compose["volumes"]
    assert "/mlauth" in MLFLOW_DOCKERFILE.read_text(), "the image makes the folder, owned by its user"


def test_mlflow_auth_config_stores_no_password_and_lets_logged_in_users_read() -> None:
    import configparser

    config = configparser.ConfigParser()
    config.read(MLFLOW_AUTH_INI)
    section = config["mlflow"]
    assert "admin_password" not in section, "the admin password comes from .env only"
    assert "admin_username" not in section, "the admin comes from .env only"
    assert section["default_permission"] == "READ"
    # `make stack` rewrites commands and environments, not files: no container path, no host.
    assert re.fullmatch(r"sqlite:///[\w.-]+\.db", section["database_uri"]), section["database_uri"]


def test_mlflow_init_makes_the_service_user_before_the_task_runners_start(services: dict[str, dict]) -> None:
    init = services["mlflow-init"]
    assert _args(init["command"]) == ["python", "-m", "review_sentiment.mlflow_users"]
    assert init["depends_on"] == {"mlflow": {"condition": "service_healthy"}}
    env = _environment(init)
    # As the admin, for the service user; no Airflow secret.
    assert env == {
        "MLFLOW_ADMIN_USERNAME": "${MLFLOW_ADMIN_USERNAME:?run deploy/gen-secrets.sh}",
        "MLFLOW_ADMIN_PASSWORD": "${MLFLOW_ADMIN_PASSWORD:?run deploy/gen-secrets.sh}",
        "MLFLOW_SERVICE_USERNAME": "${MLFLOW_SERVICE_USERNAME:?run deploy/gen-secrets.sh --add-missing}",
        "MLFLOW_SERVICE_PASSWORD": "${MLFLOW_SERVICE_PASSWORD:?run deploy/gen-secrets.sh --add-missing}",
        "CONNECTION_CHECK_MAX_COUNT": "0",
    }
    assert not init.get("volumes"), "the job reads no file"
    for name in ("airflow-scheduler", "airflow-worker"):
        assert services[name]["depends_on"]["mlflow-init"] == {"condition": "service_completed_successfully"}


def test_the_task_runners_log_in_to_mlflow_as_the_service_user(
    compose: dict, services: dict[str, dict]
) -> None:
    assert "MLFLOW_TRACKING_USERNAME" not in _environment(compose["x-airflow-common"])
    holders = {
        name for name, service in services.items() if "MLFLOW_TRACKING_USERNAME" in _environment(service)
    }
    assert holders == MLFLOW_LOGIN_HOLDERS
    for name in sorted(holders):
        env = _environment(services[name])
        assert {key: env[key] for key in MLFLOW_SERVICE_LOGIN} == MLFLOW_SERVICE_LOGIN, name
    # The admin's password reaches the server (to create the admin) and mlflow-init only.
    admin = {
        name for name, service in services.items() if "MLFLOW_ADMIN_PASSWORD" in str(_environment(service))
    }
    assert admin == {"mlflow", "mlflow-init"}


def test_mlflow_logins_are_generated_and_documented(tmp_path: Path, env_example: dict[str, str]) -> None:
    out = tmp_path / ".env"
    assert _run_gen_secrets("--output", str(out)).returncode == 0
    generated = _read_env_file(out)
    for key in ("MLFLOW_ADMIN_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY", "MLFLOW_SERVICE_PASSWORD"):
        assert len(generated[key]) >= 32, key
        assert env_example[key] == "", f".env.example must leave {key} empty"
    assert generated["MLFLOW_SERVICE_PASSWORD"] != generated["MLFLOW_ADMIN_PASSWORD"]
    for key in ("MLFLOW_ADMIN_USERNAME", "MLFLOW_SERVICE_USERNAME"):
        assert generated[key] == env_example[key], key
    assert generated["MLFLOW_SERVICE_USERNAME"] == "airflow"
    # An .env from before the service user: --add-missing adds it, keeping every other value.
    older = "".join(
        line for line in out.read_text().splitlines(True) if not line.startswith("MLFLOW_SERVICE_")
    )
    out.write_text(older)
    with pytest.raises(local_compose.ComposeError, match=r"run deploy/gen-secrets.sh --add-missing"):
        local_compose.load([COMPOSE_FILE], _read_env_file(out))
    added = _run_gen_secrets("--add-missing", "--output", str(out))
    assert added.returncode == 0, added.stderr
    assert "added MLFLOW_SERVICE_USERNAME, MLFLOW_SERVICE_PASSWORD" in added.stderr
    assert out.read_text().startswith(older)
    assert _read_env_file(out)["MLFLOW_SERVICE_USERNAME"] == "airflow"


@pytest.mark.parametrize("name", ["airflow-scheduler", "airflow-triggerer", "airflow-worker"])
def test_airflow_services_run_no_log_server(services: dict[str, dict], name: str) -> None:
    """A log server binds every interface; every task runner shares the airflow-logs volume with
    the API server, which reads task logs from it, under compose and under `make stack` alike."""
    assert "--skip-serve-logs" in _args(services[name]["command"])
    assert any(v.startswith("airflow-logs:") for v in services[name]["volumes"])
    assert any(v.startswith("airflow-logs:") for v in services["airflow-apiserver"]["volumes"])


# --- every service gets what its own scripts require ---------------------------------------------------
@pytest.fixture(scope="module")
def generated_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    out = tmp_path_factory.mktemp("env") / ".env"
    done = gen_secrets(out, os.environ)
    assert done.returncode == 0, done.stderr
    return local_compose.read_env_file(out)


@pytest.mark.parametrize(
    ("name", "script"),
    [("airflow-init", AIRFLOW_INIT), ("postgres", POSTGRES_INIT), ("postgres", REVIEWS_INIT)],
    ids=["airflow-init", "postgres-init-databases", "postgres-init-reviews-database"],
)
def test_services_get_every_variable_their_script_requires(
    generated_env: dict[str, str], name: str, script: Path
) -> None:
    """As compose builds the container's environment from a fresh .env: airflow-init once lacked
    AIRFLOW_ADMIN_USERNAME (compose only put it into SIMPLE_AUTH_MANAGER_USERS), and exited 1."""
    required = _required_by(script)
    assert required, f"no required variable found in {script.name}"
    for profiles in ("", "celery"):
        variables = {**generated_env, "COMPOSE_PROFILES": profiles}
        service = local_compose.load([COMPOSE_FILE], variables)["services"][name]
        env = local_compose.environment(service, ROOT, variables)
        assert required <= {key for key, value in env.items() if value}, required - env.keys()


def test_the_logins_agree_between_compose_and_airflow_init(generated_env: dict[str, str]) -> None:
    service = local_compose.load([COMPOSE_FILE], generated_env)["services"]["airflow-init"]
    env = local_compose.environment(service, ROOT, generated_env)
    for key in LOGIN_KEYS:
        assert env[key] == generated_env[key], key


# --- Airflow logins and roles (FAB auth manager; issue 21) ------------------------------------------
def _init_logins_code() -> dict[str, object]:
    """The literal constants of airflow-init's Python block (the roles and logins it makes)."""
    source = AIRFLOW_INIT.read_text().split("python - <<'PY'\n", 1)[1].split("\nPY\n", 1)[0]
    constants = {}
    for node in ast.parse(source).body:
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.targets[0], ast.Name)
            and node.targets[0].id.isupper()
        ):
            # Literals, or built from the constants above them (LOGINS names OPERATOR_ROLE).
            value = compile(ast.Expression(node.value), str(AIRFLOW_INIT), "eval")
            constants[node.targets[0].id] = eval(value, {"__builtins__": {}}, constants)
    return constants


def test_airflow_uses_the_fab_auth_manager_and_no_simple_auth_manager_settings(
    airflow_env: dict[str, str], compose: dict
) -> None:
    module, name = airflow_env["AIRFLOW__CORE__AUTH_MANAGER"].rsplit(".", 1)
    assert getattr(importlib.import_module(module), name).__name__ == "FabAuthManager"
    for path in (COMPOSE_FILE, AIRFLOW_ENV, DOCKERFILE, AIRFLOW_INIT, ENV_EXAMPLE, GEN_SECRETS):
        text = path.read_text().lower()
        for gone in ("simple_auth", "simpleauth", "airflow-auth", "/opt/airflow/auth"):
            assert gone not in text, f"{path.name} still names {gone}"
    assert "airflow-auth" not in compose["volumes"]


def test_airflow_init_makes_the_three_logins_with_their_roles() -> None:
    constants = _init_logins_code()
    assert dict(constants["LOGINS"]) == LOGINS
    assert {f"AIRFLOW_{who}_{part}" for who in LOGINS for part in ("USERNAME", "PASSWORD")} <= _required_by(
        AIRFLOW_INIT
    )
    # The operator's role: Viewer plus trigger, clear and approve; nothing deleted, no secrets.
    extra = set(constants["OPERATOR_EXTRA"])
    assert {("can_create", "DAG Runs"), ("can_edit", "HITL Detail"), ("can_edit", "Task Instances")} <= extra
    assert {action for action, _ in extra} <= {"can_create", "can_edit"}
    assert not {resource for _, resource in extra} & {"Connections", "Variables", "Users", "Roles"}


def test_gen_secrets_writes_the_operator_viewer_and_flower_logins(
    generated_env: dict[str, str], env_example: dict[str, str], tmp_path: Path
) -> None:
    names = {"AIRFLOW_OPERATOR": "operator", "AIRFLOW_VIEWER": "viewer", "FLOWER": "flower"}
    passwords = [generated_env["AIRFLOW_ADMIN_PASSWORD"]]
    for key, username in names.items():
        assert generated_env[f"{key}_USERNAME"] == env_example[f"{key}_USERNAME"] == username
        assert env_example[f"{key}_PASSWORD"] == "", "no password in the template"
        assert re.fullmatch(r"[0-9a-f]{48}", generated_env[f"{key}_PASSWORD"]), key
        passwords.append(generated_env[f"{key}_PASSWORD"])
    assert len(set(passwords)) == len(passwords), "two logins share a password"
    # An .env from before the roles gains exactly these lines and keeps the rest.
    out = tmp_path / ".env"
    assert _run_gen_secrets("--output", str(out)).returncode == 0
    added_keys = {f"{key}_{part}" for key in names for part in ("USERNAME", "PASSWORD")}
    older = "".join(line for line in out.read_text().splitlines(True) if line.split("=")[0] not in added_keys)
    out.write_text(older)
    added = _run_gen_secrets("--add-missing", "--output", str(out))
    assert added.returncode == 0, added.stderr
    assert out.read_text().startswith(older)
    before = {line.split("=", 1)[0] for line in older.splitlines() if line and not line.startswith("#")}
    assert _read_env_file(out).keys() - before == added_keys


def test_flower_has_a_login_of_its_own(services: dict[str, dict]) -> None:
    auth = _environment(services["flower"])["AIRFLOW__CELERY__FLOWER_BASIC_AUTH"]
    assert auth == (
        "${FLOWER_USERNAME:?run deploy/gen-secrets.sh --add-missing}:"
        "${FLOWER_PASSWORD:?run deploy/gen-secrets.sh --add-missing}"
    )
    assert "AIRFLOW_ADMIN" not in auth


def test_gen_secrets_needs_only_a_python_3_9_standard_library() -> None:
    text = GEN_SECRETS.read_text()
    assert '"$PYTHON" -S -' in text, "the generator must run without site-packages"
    source = text.split("<<'PY'\n", 1)[1].split("\nPY\n", 1)[0]
    tree = ast.parse(source, feature_version=(3, 9))
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    imported |= {
        node.module.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module
    }
    assert imported <= sys.stdlib_module_names, imported - sys.stdlib_module_names
    assert "datetime.UTC" not in source
    assert "from datetime import UTC" not in source


def test_mlflow_telemetry_is_off_for_the_stack_and_make_run(airflow_env: dict[str, str]) -> None:
    # Its client unsets an environment variable from a thread when an upload fails (no egress),
    # racing other threads that read os.environ: a train task failed on it in CI.
    assert airflow_env["MLFLOW_DISABLE_TELEMETRY"] == "true"
    assert "export MLFLOW_DISABLE_TELEMETRY=true" in RUN_LOCAL.read_text().splitlines()


# --- bounded resources and the CLI service (issue 21) ---------------------------------------------
TASK_RUNNERS = ("airflow-scheduler", "airflow-worker")


def _bytes(limit: str) -> int:
    number, unit = re.fullmatch(r"(\d+)([kmg]?)", limit.lower()).groups()
    return int(number) * 1024 ** " kmg".index(unit or " ")


@pytest.mark.parametrize("name", [*TASK_RUNNERS, "reviews-loader"])
def test_the_services_that_run_tasks_have_a_memory_limit(compose: dict, name: str) -> None:
    limit = str(compose["services"][name].get("mem_limit", ""))
    assert limit, f"{name} has no mem_limit"
    default = re.sub(r"\$\{[A-Z_]+:-([^}]+)\}", r"\1", limit)
    floor = 4 * 1024**3 if name in TASK_RUNNERS else 1024**3
    assert _bytes(default) >= floor, f"{name}'s limit {default} is below what a run was measured to need"


def test_the_cli_service_runs_only_on_demand(compose: dict, generated_env: dict[str, str]) -> None:
    cli = compose["services"]["airflow-cli"]
    assert cli["profiles"] == ["cli"]
    assert cli["restart"] == "no"
    variables = {**generated_env, "COMPOSE_PROFILES": "celery"}
    model = local_compose.load([COMPOSE_FILE], variables)
    assert "airflow-cli" not in local_compose.active_services(model, variables), "`up` would start it"
    with_cli = {**variables, "COMPOSE_PROFILES": "celery,cli"}
    assert "airflow-cli" in local_compose.active_services(
        local_compose.load([COMPOSE_FILE], with_cli), with_cli
    )
    assert cli["image"] == compose["services"]["airflow-scheduler"]["image"], "not the stack's own image"


def test_the_init_warns_on_a_machine_smaller_than_the_stack_needs(tmp_path: Path) -> None:
    script = ROOT / "deploy" / "airflow" / "airflow-init.sh"
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path)}
    fine = subprocess.run(["bash", str(script), "--check-resources"], env=env, capture_output=True, text=True)
    small = subprocess.run(
        ["bash", str(script), "--check-resources"],
        env={**env, "SENTIMENT_MIN_MEMORY_MB": str(10**9), "SENTIMENT_MIN_CPUS": "512"},
        capture_output=True, text=True,
    )  # fmt: skip
    assert fine.returncode == small.returncode == 0, fine.stderr + small.stderr
    assert "airflow-init: resources:" in fine.stdout
    assert "WARNING" not in fine.stderr, "this machine meets the stack's needs"
    assert "MB of memory, the stack needs 1000000000 MB" in small.stderr
    assert "CPUs, the stack needs 512" in small.stderr


def test_link_addresses_come_from_dot_env_with_the_published_ports_as_defaults(
    compose: dict, env_example: dict[str, str]
) -> None:
    """Mails and UI links name the UIs as browsers reach them: .env's, else this host's ports."""
    from review_sentiment import config

    common = _environment(compose["x-airflow-common"])
    defaults = {
        "SENTIMENT_AIRFLOW_UI_URL": (config.DEFAULT_AIRFLOW_UI_URL, "airflow-apiserver"),
        "MLFLOW_UI_URL": (config.DEFAULT_MLFLOW_UI_URL, "mlflow"),
    }
    for key, (default, service) in defaults.items():
        assert common[key] == f"${{{key}:-{default}}}"
        assert urlsplit(default).hostname == "127.0.0.1"
        assert urlsplit(default).port == PUBLISHED[service]
        assert f"# {key}=https://" in ENV_EXAMPLE.read_text(), f".env.example shows how to set {key}"
