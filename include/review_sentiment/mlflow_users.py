"""The mlflow-init service's command: the MLflow user the Airflow tasks log in as.

    python -m review_sentiment.mlflow_users

MLflow runs its basic-auth app (``mlflow server --app-name=basic-auth``): every logged-in user
reads, and only the admin and the users granted more write. As the admin
(``MLFLOW_ADMIN_USERNAME`` / ``MLFLOW_ADMIN_PASSWORD``), through MLflow's own auth client
(:class:`mlflow.server.auth.client.AuthServiceClient`) on ``MLFLOW_TRACKING_URI``, this creates
the service user ``MLFLOW_SERVICE_USERNAME`` if it is missing, sets its password to
``MLFLOW_SERVICE_PASSWORD`` when that no longer logs in, and grants it MANAGE on every experiment
and every registered model (the ``*`` grants of MLflow's permissions: those made before auth was
switched on, and those anyone makes later). Running it again changes nothing.

Exit codes: 0 done, 2 bad settings (retrying cannot help), 1 MLflow refused or could not be
reached; on failure one line on stderr says why.
"""

from __future__ import annotations

import os
import sys
import urllib.parse
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlflow.exceptions import MlflowException
from mlflow.utils.rest_utils import MlflowHostCreds, http_request, verify_rest_response

# The auth client's package is MLflow's server, whose FastAPI part warns on import that a Starlette
# module is deprecated: noise on this job's stderr, where one line must say what went wrong.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="starlette.middleware.wsgi is deprecated")
    from mlflow.server.auth.client import AuthServiceClient
    from mlflow.server.auth.routes import GET_CURRENT_USER

if TYPE_CHECKING:
    import requests

# What the tasks need: write (and manage) every experiment and registered model.
GRANTS: tuple[tuple[str, str, str], ...] = (
    ("experiment", "*", "MANAGE"),
    ("registered_model", "*", "MANAGE"),
)
MIN_PASSWORD_LENGTH = 12  # MLflow refuses shorter user passwords
EXIT_BAD_SETTINGS, EXIT_MLFLOW = 2, 1
# The job runs once MLflow is healthy: a short retry covers a blip, not an outage (MLflow's
# defaults, 7 retries with backoff, would hold a failing start for minutes).
MAX_RETRIES, BACKOFF_FACTOR, TIMEOUT_SECONDS = 2, 1, 30


class SettingsError(ValueError):
    """The environment does not name a usable admin, service user or MLflow URL."""


class MlflowAuthError(RuntimeError):
    """MLflow refused a request of the auth API, or could not be reached.

    Attributes:
        error_code: MLflow's error code (``RESOURCE_DOES_NOT_EXIST``, ...), empty when MLflow
            gave none.
    """

    def __init__(self, message: str, error_code: str = "") -> None:
        super().__init__(message)
        self.error_code = error_code


@dataclass(frozen=True)
class Login:
    """One MLflow login."""

    username: str
    password: str

    def host_creds(self, tracking_uri: str) -> MlflowHostCreds:
        """This login on the server at ``tracking_uri``, as MLflow's REST helpers take it."""
        return MlflowHostCreds(tracking_uri, username=self.username, password=self.password)


@dataclass(frozen=True)
class UserSettings:
    """Where MLflow is, who administers it, and the service user to make."""

    tracking_uri: str
    admin: Login
    service: Login

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> UserSettings:
        """Read and check the settings.

        Args:
            env: The environment (``MLFLOW_TRACKING_URI``, ``MLFLOW_ADMIN_*``, ``MLFLOW_SERVICE_*``).

        Returns:
            The checked settings.

        Raises:
            SettingsError: a variable is missing or empty, the URL is not http(s), the service
                user is the admin, or its password is shorter than MLflow accepts.
        """
        names = ("MLFLOW_TRACKING_URI", "MLFLOW_ADMIN_USERNAME", "MLFLOW_ADMIN_PASSWORD",
                 "MLFLOW_SERVICE_USERNAME", "MLFLOW_SERVICE_PASSWORD")  # fmt: skip
        missing = [name for name in names if not env.get(name)]
        if missing:
            raise SettingsError(f"{', '.join(missing)} unset or empty (deploy/gen-secrets.sh --add-missing)")
        uri = env["MLFLOW_TRACKING_URI"].rstrip("/")
        if urllib.parse.urlsplit(uri).scheme not in ("http", "https"):
            raise SettingsError(f"MLFLOW_TRACKING_URI must be the MLflow server's http(s) URL, not {uri!r}")
        admin = Login(env["MLFLOW_ADMIN_USERNAME"], env["MLFLOW_ADMIN_PASSWORD"])
        service = Login(env["MLFLOW_SERVICE_USERNAME"], env["MLFLOW_SERVICE_PASSWORD"])
        if service.username == admin.username:
            raise SettingsError("MLFLOW_SERVICE_USERNAME must differ from MLFLOW_ADMIN_USERNAME")
        if len(service.password) < MIN_PASSWORD_LENGTH:
            raise SettingsError(f"MLFLOW_SERVICE_PASSWORD is shorter than {MIN_PASSWORD_LENGTH} characters")
        return cls(uri, admin, service)


def grants_to_make(effective: Mapping[tuple[str, str], str]) -> list[tuple[str, str, str]]:
    """Which of :data:`GRANTS` the service user lacks.

    Args:
        effective: The user's effective permission per (resource type, pattern), as MLflow's
            ``get_user_permission`` resolves it (no grant resolves to ``default_permission``).

    Returns:
        The grants whose permission the user does not have.
    """
    return [grant for grant in GRANTS if effective.get((grant[0], grant[1])) != grant[2]]


def one_line(text: str, limit: int = 300) -> str:
    """``text`` on one line, whitespace collapsed, at most ``limit`` characters."""
    return " ".join(text.split())[:limit]


def root_cause(exc: BaseException) -> BaseException:
    """The innermost exception ``exc`` was raised from or while handling (``[Errno 111] ...``)."""
    seen = {id(exc)}
    while (inner := exc.__cause__ or exc.__context__) is not None and id(inner) not in seen:
        seen.add(id(inner))
        exc = inner
    return exc


def send(creds: MlflowHostCreds, endpoint: str, method: str, **kwargs: Any) -> requests.Response:
    """One request with MLflow's REST helper, whatever its HTTP status.

    Raises:
        MlflowAuthError: the server could not be reached (after :data:`MAX_RETRIES` retries).
    """
    try:
        return http_request(creds, endpoint, method, max_retries=MAX_RETRIES, backoff_factor=BACKOFF_FACTOR,
                            timeout=TIMEOUT_SECONDS, **kwargs)  # fmt: skip
    except MlflowException as exc:
        # MLflow's message nests requests' and urllib3's; the socket's own error says it best.
        reason = root_cause(exc)
        reason = one_line(str(reason) or type(reason).__name__)
        raise MlflowAuthError(f"cannot reach MLflow at {creds.host}: {reason}") from exc


class AdminClient(AuthServiceClient):
    """MLflow's auth client, logged in as the given admin.

    :class:`AuthServiceClient` takes its login from ``MLFLOW_TRACKING_USERNAME`` / ``_PASSWORD``,
    which on a task runner (or a Kubernetes pod with the sentiment-mlflow secret) name the service
    user; this job must act as the admin whatever those say, without rewriting the process's
    environment, so only the login and the error lines differ from the parent's ``_request``.
    """

    def __init__(self, tracking_uri: str, admin: Login) -> None:
        super().__init__(tracking_uri)
        self.admin = admin

    def _request(self, endpoint: str, method: str, *, expected_status: int = 200, **kwargs: Any) -> Any:
        response = send(self.admin.host_creds(self.tracking_uri), endpoint, method, **kwargs)
        if response.status_code == 401:
            raise MlflowAuthError(
                f"MLflow refused the admin login {self.admin.username!r} (MLFLOW_ADMIN_USERNAME/PASSWORD "
                "in .env; MLflow keeps the admin's first password, set on the first start of the "
                "mlflow-auth volume)"
            )
        try:
            response = verify_rest_response(response, endpoint, expected_status=expected_status)
        except MlflowException as exc:
            raise MlflowAuthError(f"{method} {endpoint}: {one_line(exc.message)}", exc.error_code) from exc
        return {} if response.status_code == 204 or not response.content else response.json()

    def logs_in(self, login: Login) -> bool:
        """Whether ``login`` logs in (its ``users/current`` answers 200)."""
        return send(login.host_creds(self.tracking_uri), GET_CURRENT_USER, "GET").status_code == 200


def _grant(client: AdminClient, username: str, grant: tuple[str, str, str]) -> None:
    """Grant ``grant``, replacing a lower grant on the same resources (MLflow refuses a second)."""
    resource_type, pattern, permission = grant
    try:
        client.grant_user_permission(username, resource_type, pattern, permission)
    except MlflowAuthError as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        client.revoke_user_permission(username, resource_type, pattern)
        client.grant_user_permission(username, resource_type, pattern, permission)


def ensure_service_user(client: AdminClient, service: Login) -> list[str]:
    """Make ``service`` log in to MLflow with write rights on every experiment and model.

    Args:
        client: The MLflow server, as its admin.
        service: The service user's login.

    Returns:
        What was done, one line each (nothing when all was in place).

    Raises:
        MlflowAuthError: MLflow refused a request or could not be reached.
    """
    done = []
    if not client.logs_in(service):
        try:
            client.get_user(service.username)
        except MlflowAuthError as exc:
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            client.create_user(service.username, service.password)
            done.append(f"created the MLflow user {service.username!r}")
        else:
            client.update_user_password(service.username, service.password)
            done.append(f"set the password of the MLflow user {service.username!r} to .env's")
    effective = {
        (kind, pattern): client.get_user_permission(service.username, kind, pattern).permission
        for kind, pattern, _ in GRANTS
    }
    for grant in grants_to_make(effective):
        _grant(client, service.username, grant)
        done.append(f"granted {service.username!r} {grant[2]} on every {grant[0]} ({grant[1]!r})")
    return done


def main(env: Mapping[str, str] | None = None) -> int:
    """The service user, as the module docstring says; returns the exit code."""
    try:
        settings = UserSettings.from_env(os.environ if env is None else env)
    except SettingsError as exc:
        print(f"mlflow_users: error: {exc}", file=sys.stderr)
        return EXIT_BAD_SETTINGS
    try:
        done = ensure_service_user(AdminClient(settings.tracking_uri, settings.admin), settings.service)
    except MlflowAuthError as exc:
        print(f"mlflow_users: error: {exc}", file=sys.stderr)
        return EXIT_MLFLOW
    for line in done or [f"the MLflow user {settings.service.username!r} logs in and has its grants"]:
        print(f"mlflow_users: {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
