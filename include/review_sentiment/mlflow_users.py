"""The mlflow-init service's command: the MLflow user the Airflow tasks log in as.

    python -m review_sentiment.mlflow_users

MLflow runs its basic-auth app (``mlflow server --app-name=basic-auth``): every logged-in user
reads, and only the admin and the users granted more write. As the admin
(``MLFLOW_ADMIN_USERNAME`` / ``MLFLOW_ADMIN_PASSWORD``), through the auth app's REST API on
``MLFLOW_TRACKING_URI``, this creates the service user ``MLFLOW_SERVICE_USERNAME`` if it is
missing, sets its password to ``MLFLOW_SERVICE_PASSWORD`` when that no longer logs in, and grants
it MANAGE on every experiment and every registered model (the ``*`` grants of MLflow's
permissions: those made before auth was switched on, and those anyone makes later). Running it
again changes nothing.

Exit codes: 0 done, 2 bad settings (retrying cannot help), 1 MLflow refused or could not be
reached; on failure one line on stderr says why.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# What the tasks need: write (and manage) every experiment and registered model.
GRANTS: tuple[tuple[str, str, str], ...] = (
    ("experiment", "*", "MANAGE"),
    ("registered_model", "*", "MANAGE"),
)
MIN_PASSWORD_LENGTH = 12  # MLflow refuses shorter user passwords
EXIT_BAD_SETTINGS, EXIT_MLFLOW = 2, 1
USERS = "/api/2.0/mlflow/users"
PERMISSIONS = "/api/3.0/mlflow/users/permissions"


class SettingsError(ValueError):
    """The environment does not name a usable admin, service user or MLflow URL."""


class MlflowAuthError(RuntimeError):
    """MLflow refused a request of the auth API, or could not be reached."""


@dataclass(frozen=True)
class Login:
    """One MLflow login."""

    username: str
    password: str

    def header(self) -> str:
        """The HTTP basic ``Authorization`` header value."""
        return "Basic " + base64.b64encode(f"{self.username}:{self.password}".encode()).decode()


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


def grants_to_make(rows: Sequence[Mapping[str, Any]]) -> list[tuple[tuple[str, str, str], bool]]:
    """Which of :data:`GRANTS` a user's permission rows lack.

    Args:
        rows: The user's grants, as ``GET /api/3.0/mlflow/users/permissions/list`` lists them
            (``resource_type``, ``resource_pattern``, ``permission``).

    Returns:
        Each missing grant with True when a different permission on the same resources must be
        revoked first (MLflow refuses a second grant there).
    """
    held = {
        (str(row.get("resource_type")), str(row.get("resource_pattern"))): row.get("permission")
        for row in rows
    }
    return [
        (grant, (grant[0], grant[1]) in held)
        for grant in GRANTS
        if held.get((grant[0], grant[1])) != grant[2]
    ]


def error_message(status: int, body: bytes) -> str:
    """One line from an MLflow error response: its ``message``, else the start of the body."""
    try:
        message = str(json.loads(body).get("message", ""))
    except (ValueError, AttributeError):
        message = body.decode(errors="replace")
    return f"HTTP {status}: " + " ".join(message.split())[:300]


class AuthApi:
    """JSON requests to an MLflow server, as one login."""

    def __init__(self, base_url: str, login: Login, timeout: float = 30) -> None:
        self.base_url, self.login, self.timeout = base_url.rstrip("/"), login, timeout

    def call(
        self, method: str, path: str, body: Mapping[str, Any] | None = None, login: Login | None = None
    ) -> tuple[int, bytes]:
        """``method path`` with a JSON body; returns (status, body) for any HTTP answer.

        Raises:
            MlflowAuthError: the server could not be reached.
        """
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Authorization": (login or self.login).header(), "Content-Type": "application/json"}
        request = urllib.request.Request(self.base_url + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()
        except OSError as exc:
            raise MlflowAuthError(f"cannot reach MLflow at {self.base_url}: {exc}") from exc

    def expect(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> bytes:
        """As :meth:`call`, as the admin; raises unless the answer is 200."""
        status, answer = self.call(method, path, body)
        self.check(method, path, status, answer)
        return answer

    def check(self, method: str, path: str, status: int, answer: bytes) -> None:
        """Raise :class:`MlflowAuthError` unless ``status`` (of an admin request) is 200."""
        if status == 401:
            raise MlflowAuthError(
                f"MLflow refused the admin login {self.login.username!r} (MLFLOW_ADMIN_USERNAME/PASSWORD "
                "in .env; MLflow keeps the admin's first password, set on the first start of the "
                "mlflow-auth volume)"
            )
        if status != 200:
            raise MlflowAuthError(f"{method} {path}: {error_message(status, answer)}")


def ensure_service_user(api: AuthApi, service: Login) -> list[str]:
    """Make ``service`` log in to MLflow with write rights on every experiment and model.

    Args:
        api: The MLflow server, as its admin.
        service: The service user's login.

    Returns:
        What was done, one line each (nothing when all was in place).

    Raises:
        MlflowAuthError: MLflow refused a request or could not be reached.
    """
    done = []
    status, _ = api.call("GET", f"{USERS}/current", login=service)
    if status != 200:
        query = urllib.parse.urlencode({"username": service.username})
        status, answer = api.call("GET", f"{USERS}/get?{query}")
        body = {"username": service.username, "password": service.password}
        if status == 404:
            api.expect("POST", f"{USERS}/create", body)
            done.append(f"created the MLflow user {service.username!r}")
        elif status == 200:
            api.expect("PATCH", f"{USERS}/update-password", body)
            done.append(f"set the password of the MLflow user {service.username!r} to .env's")
        else:
            api.check("GET", f"{USERS}/get", status, answer)
    query = urllib.parse.urlencode({"username": service.username})
    rows = json.loads(api.expect("GET", f"{PERMISSIONS}/list?{query}")).get("permissions", [])
    for (resource_type, pattern, permission), replace in grants_to_make(rows):
        target = {"username": service.username, "resource_type": resource_type, "resource_id": pattern}
        if replace:
            api.expect("POST", f"{PERMISSIONS}/revoke", target)
        api.expect("POST", f"{PERMISSIONS}/grant", {**target, "permission": permission})
        done.append(f"granted {service.username!r} {permission} on every {resource_type} ({pattern!r})")
    return done


def main(env: Mapping[str, str] | None = None) -> int:
    """The service user, as the module docstring says; returns the exit code."""
    try:
        settings = UserSettings.from_env(os.environ if env is None else env)
    except SettingsError as exc:
        print(f"mlflow_users: error: {exc}", file=sys.stderr)
        return EXIT_BAD_SETTINGS
    try:
        done = ensure_service_user(AuthApi(settings.tracking_uri, settings.admin), settings.service)
    except MlflowAuthError as exc:
        print(f"mlflow_users: error: {exc}", file=sys.stderr)
        return EXIT_MLFLOW
    for line in done or [f"the MLflow user {settings.service.username!r} logs in and has its grants"]:
        print(f"mlflow_users: {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
