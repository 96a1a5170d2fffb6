"""Provider-neutral results of the mail clients: messages, addresses, attachments."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Address:
    """Mailbox address as written in a header: display name and address.

    ``name`` is empty when the header carries only the address.
    """

    name: str
    email: str


@dataclass(frozen=True)
class Attachment:
    """Attachment metadata. The content stays at the provider until it is fetched.

    ``size`` is in bytes as the provider reports it. ``attachment_id`` is
    ``None`` for small Gmail attachments whose data came inline with the message.
    """

    filename: str
    mime_type: str
    size: int
    attachment_id: str | None


@dataclass(frozen=True)
class MailMessage:
    """One mail message, parsed from a provider resource.

    Attributes:
      external_id: The provider's message id.
      thread_id: The provider's thread or conversation id.
      sent_at: When the provider received or sent the message, aware UTC.
      sender: The From address, or ``None`` when the header is missing.
      recipients: To addresses followed by Cc addresses.
      subject: The decoded Subject header, empty when missing.
      text: The body as plain text. HTML-only messages are converted.
      html_present: Whether the message has an HTML body part.
      attachments: Attachment metadata in MIME order.
      labels: Gmail label ids, or the Outlook folder the message was seen in.
      is_outbound: Whether the mailbox owner sent the message.
      rfc822_message_id: The Message-ID header, for threading across providers.
      header_date: The Date header, aware, or ``None`` when missing or invalid.
    """

    external_id: str
    thread_id: str
    sent_at: datetime
    sender: Address | None
    recipients: tuple[Address, ...]
    subject: str
    text: str
    html_present: bool
    attachments: tuple[Attachment, ...]
    labels: frozenset[str]
    is_outbound: bool
    rfc822_message_id: str | None = None
    header_date: datetime | None = None
