"""A real SMTP server on loopback for the notification tests: aiosmtpd on 127.0.0.1 at a free
port, and the ``smtp`` Airflow connection that reaches it."""

from __future__ import annotations

import email
import email.policy
import json
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from tests.support.servers import free_port

SENDER = "airflow@example.org"


@dataclass
class Inbox:
    """An aiosmtpd handler that keeps what it is given; ``refuse`` makes it answer 554 instead."""

    messages: list[tuple[list[str], EmailMessage]] = field(default_factory=list)
    refuse: bool = False

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.refuse:
            return "554 5.7.1 Message refused by policy"
        parsed = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        self.messages.append((list(envelope.rcpt_tos), parsed))
        return "250 Message accepted for delivery"


@dataclass
class MailServer:
    inbox: Inbox
    port: int
    controller: Any
    running: bool = True

    def stop(self) -> None:
        if self.running:
            self.controller.stop()
            self.running = False


def connection(port: int, **extra: object) -> str:
    """The ``smtp`` connection as Airflow reads it from ``AIRFLOW_CONN_<ID>``: JSON, typed extras."""
    return json.dumps(
        {
            "conn_type": "smtp",
            "host": "127.0.0.1",
            "port": port,
            "extra": {"disable_tls": True, "disable_ssl": True, "from_email": SENDER, "timeout": 5, **extra},
        }
    )


def start_mail_server() -> MailServer:
    """aiosmtpd on 127.0.0.1 at a free port; stop it with ``.stop()``."""
    from aiosmtpd.controller import Controller

    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    return MailServer(inbox, port, controller)
