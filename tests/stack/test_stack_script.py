"""Fast checks of ``make stack`` without starting the stack: compose's semantics (interpolation,
env files, merged files, profiles, dependencies), what the mapping to local programs changes (only
host names, ports, container paths and the images' built-ins), the supervisord configuration, and
how processes are recorded and stopped by session."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from scripts.local_stack import compose, supervise
from scripts.local_stack.mapping import Mapper
from scripts.local_stack.stack import Stack
from tests.support.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yaml"
SECRETS = {
    "POSTGRES_PASSWORD": "pg-secret",
    "AIRFLOW_DB_PASSWORD": "airflow-db-secret",
    "MLFLOW_DB_PASSWORD": "mlflow-db-secret",
    "REVIEWS_DB_PASSWORD": "reviews-db-secret",
    "AIRFLOW_ADMIN_USERNAME": "ops",
    "AIRFLOW_ADMIN_PASSWORD": "admin-secret",
    "AIRFLOW_OPERATOR_USERNAME": "operator",
    "AIRFLOW_OPERATOR_PASSWORD": "operator-secret",
    "AIRFLOW_VIEWER_USERNAME": "viewer",
    "AIRFLOW_VIEWER_PASSWORD": "viewer-secret",
    "FLOWER_USERNAME": "flower",
    "FLOWER_PASSWORD": "flower-secret",
    "MLFLOW_ADMIN_USERNAME": "mlflow-admin",
    "MLFLOW_ADMIN_PASSWORD": "mlflow-admin-secret",
    "MLFLOW_FLASK_SERVER_SECRET_KEY": "flask",
    "MLFLOW_SERVICE_USERNAME": "airflow",
    "MLFLOW_SERVICE_PASSWORD": "mlflow-service-secret",
    "AIRFLOW__CORE__FERNET_KEY": "fernet",
    "AIRFLOW__API_AUTH__JWT_SECRET": "jwt",
    "AIRFLOW__API__SECRET_KEY": "api",
    "SENTIMENT_DATA_DIR": "/srv/reviews",
}
# Set by the mapping on every program: the executable path, home, locale, and the container's name.
LOCAL_ONLY = {"PATH", "HOME", "HOSTNAME", "LANG", "LC_ALL"}


def _write_env(path: Path, values: dict[str, str]) -> Path:
    path.write_text("".join(f"{key}={value}\n" for key, value in values.items()))
    return path


@pytest.fixture
def stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Stack:
    for variable in ("STACK_AIRFLOW_PORT", "STACK_MLFLOW_PORT", "STACK_FLOWER_PORT"):
        monkeypatch.setenv(variable, str(free_port()))
    for variable in ("COMPOSE_PROFILES", "AIRFLOW__CORE__EXECUTOR"):
        monkeypatch.delenv(variable, raising=False)
    return Stack(tmp_path / "state", _write_env(tmp_path / ".env", SECRETS), [COMPOSE_FILE])


def _compose_env(stack: Stack, name: str) -> dict[str, str]:
    """What compose gives the container: interpolated, before any mapping."""
    variables = {**SECRETS, **os.environ}
    services = compose.active_services(compose.load(stack.compose_files, variables), variables)
    return compose.environment(services[name], ROOT, variables)


# --- compose's semantics ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${SET}", "x"),
        ("$SET/and", "x/and"),
        ("$${SET}", "${SET}"),
        ("${UNSET}", ""),
        ("${UNSET:-d}", "d"),
        ("${EMPTY:-d}", "d"),
        ("${EMPTY-d}", ""),
        ("${UNSET-d}", "d"),
        ("${UNSET:-${SET}}", "x"),
        ("${SET:+alt}", "alt"),
        ("${EMPTY:+alt}", ""),
        ("${EMPTY+alt}", "alt"),
        ("${SET:?never}", "x"),
        ("${EMPTY?set, even if empty}", ""),
        ("a $ b", "a $ b"),
    ],
)
def test_interpolation_matches_compose(text: str, expected: str) -> None:
    assert compose.interpolate(text, {"SET": "x", "EMPTY": ""}) == expected


@pytest.mark.parametrize(
    "text", ["${UNSET:?run gen-secrets}", "${EMPTY:?run gen-secrets}", "${UNSET?run gen-secrets}"]
)
def test_required_variables_fail_with_their_message(text: str) -> None:
    with pytest.raises(compose.ComposeError, match=r"required variable (UNSET|EMPTY) .*: run gen-secrets"):
        compose.interpolate(text, {"EMPTY": ""})


def test_env_file_parsing(tmp_path: Path) -> None:
    path = tmp_path / "x.env"
    path.write_text(
        "# comment\n\nA=plain value # comment\nexport B=b\nC='single ${A}'\nD=\"double ${B}\"\nE=${B}-e\nF=\n"
    )
    assert compose.read_env_file(path) == {
        "A": "plain value",
        "B": "b",
        "C": "single ${A}",
        "D": "double b",
        "E": "b-e",
        "F": "",
    }


def test_a_later_file_overrides_and_extends(stack: Stack, tmp_path: Path) -> None:
    """An override over the base file, as `docker compose -f a -f b` merges them."""
    override = tmp_path / "override.yaml"
    override.write_text(
        "services:\n  mlflow:\n    command: [mlflow, server, --workers=4]\n"
        "    environment:\n      EXTRA: ${MLFLOW_ADMIN_USERNAME}\n    volumes: [extra:/extra]\n"
    )
    variables = {**SECRETS}
    merged = compose.load([COMPOSE_FILE, override], variables)["services"]
    base = compose.load([COMPOSE_FILE], variables)["services"]
    assert compose.argv(merged["mlflow"]["command"]) == ["mlflow", "server", "--workers=4"]  # replaced
    assert merged["mlflow"]["environment"]["PGPASSWORD"] == "mlflow-db-secret"  # kept
    assert merged["mlflow"]["environment"]["EXTRA"] == "mlflow-admin"  # added
    assert merged["mlflow"]["volumes"] == [*base["mlflow"]["volumes"], "extra:/extra"]  # extended
    assert merged["mlflow"]["working_dir"] == base["mlflow"]["working_dir"]
    assert merged["airflow-scheduler"]["environment"]["AIRFLOW__CORE__FERNET_KEY"] == "fernet"


@pytest.mark.parametrize(("profiles", "celery"), [("", False), ("celery", True), ("other,celery", True)])
def test_profiles_and_dependencies(profiles: str, celery: bool) -> None:
    variables = {**SECRETS, "COMPOSE_PROFILES": profiles}
    services = compose.active_services(compose.load([COMPOSE_FILE], variables), variables)
    assert ({"redis", "airflow-worker", "flower"} <= services.keys()) is celery
    order = compose.start_order(services)
    assert order.index("postgres") < order.index("airflow-init") < order.index("airflow-apiserver")
    assert order.index("airflow-apiserver") < order.index("airflow-scheduler")
    assert order.index("postgres") < order.index("reviews-loader") < order.index("airflow-scheduler")
    scheduler = compose.dependencies(services, "airflow-scheduler")
    assert scheduler["airflow-init"] == "service_completed_successfully"
    assert scheduler["reviews-loader"] == "service_completed_successfully"
    assert ("redis" in scheduler) is celery  # required: false without the profile


def test_start_ranks_do_not_move_when_a_profile_adds_services() -> None:
    """supervisord's priority: a rank that moved would restart the service on `make stack` again."""
    ranks = []
    for profiles in ("", "celery"):
        variables = {**SECRETS, "COMPOSE_PROFILES": profiles}
        ranks.append(
            compose.depths(compose.active_services(compose.load([COMPOSE_FILE], variables), variables))
        )
    local, celery = ranks
    assert {name: celery[name] for name in local} == local
    assert local["postgres"] < local["airflow-init"] < local["airflow-apiserver"] < local["airflow-scheduler"]


def test_a_missing_required_variable_is_named(stack: Stack) -> None:
    _write_env(stack.env_file, {k: v for k, v in SECRETS.items() if k != "AIRFLOW__API__SECRET_KEY"})
    with pytest.raises(
        compose.ComposeError, match="AIRFLOW__API__SECRET_KEY is missing a value: run deploy/gen"
    ):
        stack.mapper()


# --- the mapping ----------------------------------------------------------------------------------
def _programs(stack: Stack) -> tuple[Mapper, dict]:
    mapper = stack.mapper()
    return mapper, {name: mapper.program(name, 1) for name in mapper.services}


def test_only_hosts_ports_and_container_paths_change(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__CORE__PARALLELISM", "3")  # not in compose: never reaches a program
    mapper, programs = _programs(stack)
    for name, program in programs.items():
        given = _compose_env(stack, name)
        builtins = set(program.env) - set(given) - LOCAL_ONLY
        assert "AIRFLOW__CORE__PARALLELISM" not in program.env
        for key, value in given.items():
            local = program.env[key]
            if "://" in value:
                before, after = urlsplit(value), urlsplit(local)
                # A service that is not enabled (redis without the celery profile) has no address.
                assert after.hostname == (
                    "127.0.0.1" if before.hostname in mapper.services else before.hostname
                )
                assert (after.scheme, after.username, after.path) == (
                    before.scheme,
                    before.username,
                    before.path,
                )
            elif value.startswith("/"):
                assert not local.startswith(("/opt/airflow", "/mlartifacts")), (name, key, local)
                assert local == str(mapper.path(name, value)), (name, key)
            else:
                assert local == value, (name, key)
        if mapper.kinds[name] == "airflow":
            assert builtins <= {
                "AIRFLOW_HOME", "AIRFLOW__CORE__DAGS_FOLDER", "AIRFLOW__CORE__PLUGINS_FOLDER",
                "AIRFLOW__LOGGING__BASE_LOG_FOLDER", "PYTHONPATH", "AIRFLOW__API__HOST", "AIRFLOW__API__PORT",
                "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_HOST",
                "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT",
            }, (name, builtins)  # fmt: skip
        else:
            assert builtins <= {"PGDATA", "PGPORT"}, (name, builtins)
    scheduler = programs["airflow-scheduler"].env
    assert scheduler["AIRFLOW__CORE__DAGS_FOLDER"] == str(ROOT / "dags")
    assert scheduler["PYTHONPATH"] == str(ROOT / "include")
    assert scheduler["REVIEWS_PATH"] == "/srv/reviews/womens_clothing_reviews.csv.gz"
    assert scheduler["SENTIMENT_ARTIFACT_ROOT"] == str(stack.volume("sentiment-artifacts"))
    assert scheduler["AIRFLOW__LOGGING__BASE_LOG_FOLDER"] == str(stack.volume("airflow-logs"))
    # The browser's URL is MLflow's published port; the tasks' is the service's: the same here.
    assert (
        scheduler["MLFLOW_UI_URL"]
        == scheduler["MLFLOW_TRACKING_URI"]
        == f"http://127.0.0.1:{os.environ['STACK_MLFLOW_PORT']}"
    )
    api_port = os.environ["STACK_AIRFLOW_PORT"]
    assert scheduler["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == f"http://127.0.0.1:{api_port}/execution/"
    # Mails link to the UI as the browser reaches it: the published port, made this stack's.
    assert scheduler["SENTIMENT_AIRFLOW_UI_URL"] == f"http://127.0.0.1:{api_port}"
    # FAB's users live in the metadata database: airflow-init writes them where the API server reads.
    init, api = programs["airflow-init"].env, programs["airflow-apiserver"].env
    for key in ("AIRFLOW__CORE__AUTH_MANAGER", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "PGPASSWORD"):
        assert init[key] == api[key], key
    assert api["AIRFLOW__CORE__AUTH_MANAGER"].endswith(".FabAuthManager")


def test_the_caller_environment_interpolates_as_for_compose(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "CeleryExecutor")
    monkeypatch.setenv("COMPOSE_PROFILES", "celery")
    _, programs = _programs(stack)
    assert programs["airflow-scheduler"].env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    worker = programs["airflow-worker"]
    assert worker.argv[1:] == ["celery", "worker", "--skip-serve-logs"]
    redis = stack.ports["redis:6379"]
    assert worker.env["AIRFLOW__CELERY__BROKER_URL"] == f"redis://127.0.0.1:{redis}/0"
    assert programs["redis"].argv[1:5] == ["--bind", "127.0.0.1", "--port", str(redis)]
    assert not worker.stop_as_group, "DUMB_INIT_SETSID=0: Celery's warm shutdown, the worker alone"
    assert programs["flower"].env["AIRFLOW__CELERY__FLOWER_HOST"] == "127.0.0.1"


def test_a_variable_removed_from_compose_is_missing_here(stack: Stack, tmp_path: Path) -> None:
    line = "      AIRFLOW_ADMIN_USERNAME: ${AIRFLOW_ADMIN_USERNAME:?run deploy/gen-secrets.sh}\n"
    text = COMPOSE_FILE.read_text()
    assert text.count(line) == 1
    stack.compose_files = [tmp_path / "compose.yaml"]
    stack.compose_files[0].write_text(text.replace(line, ""))
    _, programs = _programs(stack)
    assert "AIRFLOW_ADMIN_USERNAME" not in programs["airflow-init"].env
    assert programs["airflow-init"].env["AIRFLOW_ADMIN_PASSWORD"] == "admin-secret"


def test_the_summary_shows_the_three_logins_of_the_env_file(stack: Stack) -> None:
    """`make stack-status` (and the end of `up`) print each Airflow login airflow-init makes."""
    stack.ports.update({"airflow-apiserver:8080": 18080, "mlflow:5000": 15000})
    summary = stack.summary()
    assert "http://127.0.0.1:18080" in summary
    for who in ("admin", "operator", "viewer"):
        key = f"AIRFLOW_{who.upper()}"
        user, password = SECRETS[f"{key}_USERNAME"], SECRETS[f"{key}_PASSWORD"]
        assert re.search(rf"^ +{who} +{re.escape(user)} / {re.escape(password)}$", summary, re.M), summary


def test_the_jwt_secret_goes_where_compose_puts_it(stack: Stack) -> None:
    _, programs = _programs(stack)
    holders = {name for name, program in programs.items() if "AIRFLOW__API_AUTH__JWT_SECRET" in program.env}
    assert holders == {"airflow-apiserver", "airflow-scheduler"}


def test_the_reviews_loader_runs_the_stage_package_against_the_local_postgres(stack: Stack) -> None:
    """The compose job as a local one-shot program: this virtualenv's python, the repository's
    package, and the connection the scheduler holds, pointed at the local PostgreSQL."""
    mapper, programs = _programs(stack)
    loader = programs["reviews-loader"]
    assert Path(loader.argv[0]) == Path(sys.executable).parent / "python"
    assert loader.argv[1:] == ["-m", "review_sentiment.reviews_loader", "seed", "--source-env",
                               "AIRFLOW_CONN_REVIEWS_DB", "--table", "reviews", "--weeks", "12"]  # fmt: skip
    assert loader.restart == "no"
    assert mapper.health("reviews-loader").argv is None, "a one-shot job: done when it exits 0"
    env = loader.env
    postgres = stack.ports["postgres:5432"]
    assert (
        env["AIRFLOW_CONN_REVIEWS_DB"]
        == f"postgresql://reviews:reviews-db-secret@127.0.0.1:{postgres}/reviews"
    )
    assert env["AIRFLOW_CONN_REVIEWS_DB"] == programs["airflow-scheduler"].env["AIRFLOW_CONN_REVIEWS_DB"]
    assert env["REVIEWS_PATH"] == "/srv/reviews/womens_clothing_reviews.csv.gz"
    assert env["PYTHONPATH"] == str(ROOT / "include")
    assert "AIRFLOW__CORE__FERNET_KEY" not in env
    assert "PGPASSWORD" not in env, "Airflow's database password is not the loader's"
    holders = {name for name, program in programs.items() if "AIRFLOW_CONN_REVIEWS_DB" in program.env}
    assert holders == {"airflow-scheduler", "reviews-loader"}  # and the Celery workers, with the profile


def test_every_server_binds_loopback(stack: Stack) -> None:
    _, programs = _programs(stack)
    mlflow = programs["mlflow"].argv
    assert Path(mlflow[0]).name == "mlflow"
    assert f"--port={os.environ['STACK_MLFLOW_PORT']}" in mlflow
    assert "--host=127.0.0.1" in mlflow
    hosts = next(arg for arg in mlflow if arg.startswith("--allowed-hosts=")).split("=", 1)[1].split(",")
    assert "mlflow" not in hosts
    assert "127.0.0.1:*" in hosts
    assert "listen_addresses=127.0.0.1" in programs["postgres"].argv
    assert programs["airflow-apiserver"].env["AIRFLOW__API__HOST"] == "127.0.0.1"
    scheduler = programs["airflow-scheduler"]
    assert scheduler.env["AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_HOST"] == "127.0.0.1"
    for name in ("airflow-scheduler", "airflow-triggerer"):  # no log server: it binds every interface
        assert "--skip-serve-logs" in programs[name].argv
    assert not any("0.0.0.0" in arg for program in programs.values() for arg in program.argv)


def test_healthchecks_are_compose_s_own_commands_made_local(stack: Stack) -> None:
    mapper, _ = _programs(stack)
    scheduler = mapper.health("airflow-scheduler")
    port = stack.ports["airflow-scheduler:8974"]
    assert scheduler.argv == ["curl", "--fail", "--silent", f"http://127.0.0.1:{port}/health"]
    assert (scheduler.start_period, scheduler.interval, scheduler.retries) == (60, 30, 5)
    assert mapper.health("airflow-triggerer").argv[:2] == ["sh", "-c"]
    assert mapper.health("airflow-init").argv is None


def test_supervisord_config_follows_the_restart_policies(stack: Stack) -> None:
    _, programs = _programs(stack)
    supervisor = supervise.Supervisor(stack.state_dir, stack.logs)
    supervisor.write(list(programs.values()))
    sections = dict(re.findall(r"\[program:([\w-]+)\]\n(.*?)(?=\n\[|\Z)", supervisor.conf.read_text(), re.S))
    assert set(sections) == set(programs)
    one_shot = {"airflow-init", "reviews-loader", "mlflow-init"}
    for name in one_shot:
        assert "autorestart=false" in sections[name], name
        assert "startsecs=0" in sections[name], name
    for name in set(programs) - one_shot:
        assert "autorestart=true" in sections[name], name
    assert "stopsignal=INT" in sections["postgres"]
    assert "stopasgroup=true" in sections["airflow-scheduler"]
    spec = json.loads(next(supervisor.specs.glob("airflow-scheduler.*.json")).read_text())
    assert spec["env"] == programs["airflow-scheduler"].env
    assert oct(next(supervisor.specs.glob("*.json")).stat().st_mode)[-3:] == "600"


# --- sessions --------------------------------------------------------------------------------------
def _ticks(pid: int) -> int:
    return int(supervise.proc_stat(pid)[19])  # type: ignore[index]


def test_session_exec_starts_a_recorded_session_with_the_given_environment(tmp_path: Path) -> None:
    spec = {
        "name": "probe",
        "argv": ["sh", "-c", 'echo "$$ $(ps -o sid= -p $$) $ONLY"; env | wc -l'],
        "env": {"PATH": "/usr/bin:/bin", "ONLY": "this"},
        "cwd": str(tmp_path),
        "log": str(tmp_path / "probe.log"),
        "sessions": str(tmp_path / "sessions"),
    }
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    # As supervisord starts it: a process group leader.
    argv = [sys.executable, "-I", "-S", str(supervise.SESSION_EXEC), str(tmp_path / "spec.json")]
    done = subprocess.run(argv, capture_output=True, text=True, process_group=0, timeout=30, check=True)
    assert done.stdout == "", "the output goes to the program's log, not supervisord's pipe"
    header, first, count = (tmp_path / "probe.log").read_text().splitlines()
    assert header.startswith("--- ")
    assert header.endswith(spec["argv"][-1])
    pid, sid, only = first.split()
    assert pid == sid, "not a session of its own"
    assert only == "this"
    assert int(count) <= 4, "more than the spec's environment (PWD, SHLVL, _ aside)"
    recorded_pid, _, name = (tmp_path / "sessions").read_text().split()
    assert (recorded_pid, name) == (pid, "probe")


def test_a_reused_pid_is_not_signalled() -> None:
    sleeper = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        real = supervise.Session(sleeper.pid, _ticks(sleeper.pid), "x")
        impostor = supervise.Session(sleeper.pid, real.ticks + 1, "x")
        assert real.alive()
        assert not impostor.alive()
        assert impostor.members() == []
        supervise.stop_sessions([impostor], supervise.signal.SIGTERM, timeout=1)
        assert sleeper.poll() is None, "a process with another start time was signalled"
        supervise.stop_sessions([real], supervise.signal.SIGTERM, timeout=10)
        assert sleeper.wait(10) is not None
    finally:
        sleeper.kill()
        sleeper.wait()


def test_stopping_a_session_takes_children_in_other_groups_and_ignores_zombies() -> None:
    # Like the scheduler: one child in its process group, one in a group of its own (as Airflow runs
    # each task); both stay in the program's session.
    code = (
        "import subprocess\n"
        "subprocess.Popen(['sleep', '60'], process_group=0)\n"
        "subprocess.Popen(['sleep', '60']).wait()\n"
    )
    leader = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    session = supervise.Session(leader.pid, _ticks(leader.pid), "x")
    deadline = time.monotonic() + 10
    while len(session.members()) < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    members = session.members()
    assert len(members) == 3
    assert len({supervise.proc_stat(pid)[2] for pid in members}) == 2, "one child should lead its own group"  # type: ignore[index]
    supervise.stop_sessions([session], supervise.signal.SIGTERM, timeout=10)
    leader.wait(10)
    assert session.members() == []


def test_working_dir_is_mapped_as_a_container_path(stack: Stack, tmp_path: Path) -> None:
    """MLflow's auth app keeps its users where its ini's relative sqlite URI points: the program's
    folder, which is compose's working_dir (/mlauth) mapped to the mlflow-auth volume."""
    _, programs = _programs(stack)
    mlflow = programs["mlflow"]
    assert Path(mlflow.cwd) == stack.volume("mlflow-auth")
    assert stack.volume("mlflow-auth").is_dir()
    ini = Path(mlflow.env["MLFLOW_AUTH_CONFIG_PATH"])
    assert ini == ROOT / "deploy" / "mlflow" / "basic_auth.ini"
    assert "database_uri = sqlite:///basic_auth.db" in ini.read_text()
    assert "--app-name=basic-auth" in mlflow.argv
    # Without working_dir: the image's folder, as before; outside every mount point: refused.
    assert Path(programs["postgres"].cwd) == stack.state_dir / "containers" / "postgres"
    text = COMPOSE_FILE.read_text().replace("working_dir: /mlauth", "working_dir: /nowhere")
    stack.compose_files = [tmp_path / "compose.yaml"]
    stack.compose_files[0].write_text(text)
    with pytest.raises(compose.ComposeError, match="/nowhere is under no mount point"):
        _programs(stack)


def test_mlflow_init_is_a_one_shot_job_with_the_service_login(stack: Stack) -> None:
    mapper, programs = _programs(stack)
    init = programs["mlflow-init"]
    assert Path(init.argv[0]) == Path(sys.executable).parent / "python"
    assert init.argv[1:] == ["-m", "review_sentiment.mlflow_users"]
    assert init.restart == "no"
    assert mapper.health("mlflow-init").argv is None, "a one-shot job: done when it exits 0"
    assert init.env["MLFLOW_TRACKING_URI"] == f"http://127.0.0.1:{os.environ['STACK_MLFLOW_PORT']}"
    assert init.env["MLFLOW_SERVICE_PASSWORD"] == "mlflow-service-secret"
    assert "AIRFLOW__CORE__FERNET_KEY" not in init.env
    scheduler = programs["airflow-scheduler"].env
    assert (scheduler["MLFLOW_TRACKING_USERNAME"], scheduler["MLFLOW_TRACKING_PASSWORD"]) == (
        "airflow",
        "mlflow-service-secret",
    )
    order = compose.start_order(mapper.services)
    assert order.index("mlflow") < order.index("mlflow-init") < order.index("airflow-scheduler")
