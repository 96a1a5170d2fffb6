"""Transports of outbox items: SMTP or ``.eml`` files, and webhooks."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import smtplib
import ssl
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx

from ..errors import ConfigurationError
from ..logging import get_logger
from ..settings import Settings

logger = get_logger(__name__)

#: How long a webhook POST may take, in seconds.
WEBHOOK_TIMEOUT_S = 10.0

#: How long an SMTP conversation may take, in seconds.
SMTP_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class MailContent:
    """A mail's subject and bodies; ``html`` is optional."""

    subject: str
    text: str
    html: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


def message_id_for(key: str) -> str:
    """Return a stable ``Message-ID`` for an outbox key, so duplicates look the same."""
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    return f"<{digest}@wallie.outbox>"


def build_message(settings: Settings, key: str, recipient: str, content: MailContent) -> EmailMessage:
    """Return the MIME message: plain text, with an HTML alternative when given."""
    message = EmailMessage()
    message["From"] = settings.mail_from
    message["To"] = recipient
    message["Subject"] = content.subject
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = message_id_for(key) if key else make_msgid()
    for name, value in content.headers.items():
        message[name] = value

    message.set_content(content.text)
    if content.html:
        message.add_alternative(content.html, subtype="html")

    return message


def deliver_mail(settings: Settings, key: str, recipient: str, content: MailContent) -> str:
    """Send one mail through SMTP, or write it to the outbox folder when SMTP is unset.

    Returns a sentence saying where the mail went.
    """
    message = build_message(settings, key, recipient, content)
    if settings.smtp_url:
        _send_smtp(settings.smtp_url, message)
        return f"Sent through SMTP to {recipient}."

    path = write_eml(settings.outbox_dir, key, message)
    return f"Wrote {path}."


def eml_file_name(key: str) -> str:
    """Return the name of the ``.eml`` file of the outbox item with idempotency key ``key``."""
    return hashlib.sha256(key.encode()).hexdigest()[:24] + ".eml"


def write_eml(folder: Path, key: str, message: EmailMessage) -> Path:
    """Write ``message`` as ``<key digest>.eml``; rewriting the same key replaces the file."""
    folder.mkdir(parents=True, exist_ok=True)
    name = eml_file_name(key)
    path = folder / name
    partial = folder / f".{name}.partial"
    partial.write_bytes(bytes(message))
    os.replace(partial, path)
    return path


def _send_smtp(url: str, message: EmailMessage) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ConfigurationError(
            "SMTP_URL", "SMTP_URL is invalid: expected smtp://[USER:PASSWORD@]HOST[:PORT] or smtps://..."
        )

    port = parts.port or (465 if parts.scheme == "smtps" else 587)
    if parts.scheme == "smtps":
        client: smtplib.SMTP = smtplib.SMTP_SSL(
            parts.hostname, port, timeout=SMTP_TIMEOUT_S, context=ssl.create_default_context()
        )
    else:
        client = smtplib.SMTP(parts.hostname, port, timeout=SMTP_TIMEOUT_S)

    with client:
        if parts.scheme == "smtp" and client.has_extn("starttls"):
            client.starttls(context=ssl.create_default_context())

        if parts.username:
            client.login(unquote(parts.username), unquote(parts.password or ""))

        client.send_message(message)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """Return the HMAC-SHA256 signature of a webhook: hex of ``timestamp.body``."""
    signed = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def post_webhook(settings: Settings, key: str, url: str, event: dict[str, Any]) -> str:
    """POST ``event`` as JSON to ``url``, signed when a webhook secret is set.

    Headers: ``X-Wallie-Event-Id`` (the outbox key, for the receiver to
    drop duplicates), ``X-Wallie-Timestamp`` (Unix seconds) and
    ``X-Wallie-Signature: sha256=HEX`` over ``timestamp.body``.

    Raises:
      httpx.HTTPError: The request failed or the receiver returned a 4xx or 5xx status.
    """
    body = json.dumps(event, sort_keys=True, ensure_ascii=False, default=str).encode()
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "X-Wallie-Event-Id": key,
        "X-Wallie-Timestamp": str(timestamp),
    }
    if settings.webhook_secret:
        headers["X-Wallie-Signature"] = "sha256=" + sign(settings.webhook_secret, timestamp, body)

    response = httpx.post(url, content=body, headers=headers, timeout=WEBHOOK_TIMEOUT_S)
    response.raise_for_status()
    return f"Posted to the webhook, which answered {response.status_code}."
