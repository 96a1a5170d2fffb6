"""A local SMTP server for tests that check mail end to end."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from aiosmtpd.controller import Controller

from tests.servers import free_port


@dataclass
class Received:
    """One message the server accepted."""

    mail_from: str
    recipients: list[str]
    content: bytes


@dataclass
class Collector:
    """aiosmtpd handler that keeps every message it receives."""

    messages: list[Received] = field(default_factory=list)

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 - aiosmtpd hook name
        self.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted for delivery"


@contextmanager
def smtp_server() -> Iterator[tuple[str, Collector]]:
    """Run an SMTP server on loopback; yield its ``smtp://`` URL and the collector."""
    collector = Collector()
    controller = Controller(collector, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield f"smtp://127.0.0.1:{controller.port}", collector
    finally:
        controller.stop()
