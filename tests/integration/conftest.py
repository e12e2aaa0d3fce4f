"""Session-wide real servers for the integration tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.mail import MailServer, start_mail_server
from tests.support.servers import MlflowServer, PostgresServer


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    server = PostgresServer().init().start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture(scope="session")
def mlflow_server(postgres: PostgresServer) -> Iterator[MlflowServer]:
    server = MlflowServer(postgres.create_database("mlflow")).start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture(scope="module")
def mail() -> Iterator[MailServer]:
    """An SMTP server on loopback, one per module, so each module counts its own mails."""
    server = start_mail_server()
    try:
        yield server
    finally:
        server.stop()
