from __future__ import annotations

import email
import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from email import policy
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import peewee
import pytest
from aiosmtpd.controller import Controller

from tests.servers import free_port
from wallie.db.models import Notification, OutboxItem, User
from wallie.notify import MailContent, add_email, add_notification, add_webhook, deliver
from wallie.settings import Settings

CONTENT = MailContent(
    subject="Hot lead: Ana Souza",
    text="Ana asked for a quote for 40 units.",
    html="<p>Ana asked for a quote for <b>40 units</b>.</p>",
)


class _Collector:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 - aiosmtpd hook name
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp_server() -> Iterator[tuple[str, _Collector]]:
    """A local SMTP server that keeps every message it receives."""
    collector = _Collector()
    controller = Controller(collector, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield f"smtp://127.0.0.1:{controller.port}", collector
    controller.stop()


class _WebhookHandler(BaseHTTPRequestHandler):
    received: list[tuple[dict[str, str], bytes]] = []
    status = 204

    def do_POST(self) -> None:  # noqa: N802 - http.server hook name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((dict(self.headers), body))
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def webhook_server() -> Iterator[tuple[str, type[_WebhookHandler]]]:
    """A local HTTP server that records webhook POSTs."""
    handler = type("Handler", (_WebhookHandler,), {"received": [], "status": 204})
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hooks/wallie", handler
    server.shutdown()
    server.server_close()


@pytest.fixture
def user(db: peewee.Database) -> User:
    return User.create(email="sam@example.com", name="Sam")


def test_adding_the_same_key_twice_keeps_one_item(user: User) -> None:
    first = add_email(user, "hot-lead:1", "sam@example.com", CONTENT)
    second = add_email(user, "hot-lead:1", "sam@example.com", CONTENT)

    assert first.id == second.id
    assert OutboxItem.select().count() == 1


def test_mail_without_smtp_is_written_once_as_eml(user: User, settings: Settings) -> None:
    item = add_email(user, "hot-lead:1", "sam@example.com", CONTENT)

    first = deliver(item.id, settings)
    second = deliver(item.id, settings)

    files = list(settings.outbox_dir.glob("*.eml"))
    assert first.status == "sent"
    assert second.status == "sent"
    assert second.detail == "Already claimed or done."
    assert len(files) == 1
    parsed = email.message_from_bytes(files[0].read_bytes(), policy=policy.default)
    assert parsed["To"] == "sam@example.com"
    assert parsed["Subject"] == "Hot lead: Ana Souza"
    assert parsed.get_body(("plain",)).get_content().strip() == CONTENT.text
    assert "<b>40 units</b>" in parsed.get_body(("html",)).get_content()


def test_mail_goes_through_smtp_when_configured(user: User, settings: Settings, smtp_server) -> None:
    url, collector = smtp_server
    item = add_email(user, "summary:1:2026-12-04", "sam@example.com", CONTENT)

    deliver(item.id, settings.replace(smtp_url=url))

    [(sender, recipients, raw)] = collector.messages
    assert recipients == ["sam@example.com"]
    assert "wallie@localhost" in sender
    assert b"Hot lead: Ana Souza" in raw
    assert not list(Path(settings.outbox_dir).glob("*.eml"))


def test_failed_delivery_goes_back_to_pending_with_the_error(user: User, settings: Settings) -> None:
    item = add_email(user, "k", "sam@example.com", CONTENT)
    unreachable = settings.replace(smtp_url=f"smtp://127.0.0.1:{free_port()}")

    with pytest.raises(ConnectionRefusedError):
        deliver(item.id, unreachable)

    stored = OutboxItem.get_by_id(item.id)
    assert stored.status == "pending"
    assert stored.attempts == 1
    assert "ConnectionRefusedError" in stored.last_error


def test_notification_becomes_an_in_app_row_once(user: User, settings: Settings) -> None:
    item = add_notification(user, "hot:1", "hot_lead", "Ana is hot", "Score 91", {"contact_id": 3})

    deliver(item.id, settings)
    deliver(item.id, settings)

    [notification] = Notification.select()
    assert notification.title == "Ana is hot"
    assert notification.data == {"contact_id": 3}


def test_webhook_is_signed_with_hmac_sha256(user: User, settings: Settings, webhook_server) -> None:
    url, handler = webhook_server
    item = add_webhook(user, "hot-lead:1:3", url, {"type": "hot_lead", "score": 91})

    deliver(item.id, settings.replace(webhook_secret="s3cret"))

    [(headers, body)] = handler.received
    timestamp = headers["X-Wallie-Timestamp"]
    expected = hmac.new(b"s3cret", timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    assert headers["X-Wallie-Signature"] == f"sha256={expected}"
    assert headers["X-Wallie-Event-Id"] == "hot-lead:1:3"
    assert json.loads(body) == {"type": "hot_lead", "score": 91}


def test_webhook_error_status_is_retried(user: User, settings: Settings, webhook_server) -> None:
    url, handler = webhook_server
    handler.status = 503
    item = add_webhook(user, "hot-lead:2", url, {"type": "hot_lead"})

    with pytest.raises(Exception, match="503"):
        deliver(item.id, settings)

    assert OutboxItem.get_by_id(item.id).status == "pending"
