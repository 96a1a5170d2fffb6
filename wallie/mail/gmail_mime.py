"""Parsing of Gmail ``users.messages.get`` resources fetched with ``format=full``.

Gmail has already split the MIME tree into ``payload.parts`` and removed the
transfer encoding, so each part's ``body.data`` is the raw content in base64url.
What is left to do here: pick the body (text/plain before text/html), tell
attachments from body parts, decode with the declared charset, and parse the
address and date headers with :mod:`email.utils`.
"""

from __future__ import annotations

import base64
import binascii
import codecs
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.header import decode_header, make_header
from email.message import Message
from email.utils import getaddresses, parsedate_to_datetime
from typing import Any

from wallie.logging import get_logger

from .html_text import html_to_text
from .message import Address, Attachment, MailMessage

logger = get_logger(__name__)

#: Charset for text parts that declare none. RFC 2046 says US-ASCII, but
#: UTF-8 decodes ASCII the same and survives mislabeled 8-bit content.
DEFAULT_CHARSET = "utf-8"

#: Gmail system label on messages the mailbox owner sent.
SENT_LABEL = "SENT"

GmailResource = Mapping[str, Any]


@dataclass
class _BodyParts:
    """Body and attachment parts found while walking the MIME tree."""

    plain: list[str] = field(default_factory=list)
    html: list[str] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)


def decode_base64url(data: str) -> bytes:
    """Decode base64url text with or without ``=`` padding.

    Parameters:
      data: The encoded text, as in a Gmail ``body.data`` field.

    Returns:
      The decoded bytes.

    Raises:
      ValueError: When ``data`` is not base64url.
    """
    cleaned = "".join(data.split())
    padded = cleaned + "=" * (-len(cleaned) % 4)
    try:
        return base64.urlsafe_b64decode(padded)
    except binascii.Error as error:
        raise ValueError(f"Invalid base64url data of length {len(cleaned)}.") from error


def _header_message(headers: Iterable[Mapping[str, str]]) -> Message:
    """Load Gmail's header list into a Message to reuse its parameter parsing."""
    message = Message()
    for header in headers:
        message[header.get("name", "")] = header.get("value", "")

    return message


def _decode_words(value: str) -> str:
    """Decode RFC 2047 encoded words such as ``=?UTF-8?Q?...?=``."""
    try:
        return str(make_header(decode_header(value)))
    except (LookupError, UnicodeDecodeError, ValueError):
        return value


def _decode_text(raw: bytes, charset: str | None, message_id: str) -> str:
    """Decode a text part with its declared charset, replacing bad bytes."""
    declared = charset or DEFAULT_CHARSET
    try:
        codecs.lookup(declared)
    except LookupError:
        logger.warning(
            "Unknown charset %r in message %s, decoding as %s with replacements.",
            declared,
            message_id,
            DEFAULT_CHARSET,
        )
        return raw.decode(DEFAULT_CHARSET, errors="replace")

    try:
        return raw.decode(declared)
    except UnicodeDecodeError:
        logger.warning(
            "Message %s has bytes that are invalid in its charset %r, "
            "decoding with replacements.",
            message_id,
            declared,
        )
        return raw.decode(declared, errors="replace")


def _is_attachment(part: GmailResource, headers: Message) -> bool:
    """Tell an attachment from a body part.

    A part with a file name or ``Content-Disposition: attachment`` is an
    attachment even when it is text/plain.
    """
    if part.get("filename"):
        return True

    return headers.get_content_disposition() == "attachment"


def _attachment(part: GmailResource, headers: Message) -> Attachment:
    body = part.get("body", {})
    filename = part.get("filename") or headers.get_filename() or ""
    return Attachment(
        filename=filename,
        mime_type=part.get("mimeType", "application/octet-stream"),
        size=int(body.get("size", 0)),
        attachment_id=body.get("attachmentId"),
    )


def _walk_parts(part: GmailResource) -> Iterator[GmailResource]:
    """Yield the leaf parts of a MIME tree, depth first, in document order."""
    children = part.get("parts")
    if children:
        for child in children:
            yield from _walk_parts(child)
    else:
        yield part


def _collect_parts(payload: GmailResource, message_id: str) -> _BodyParts:
    found = _BodyParts()
    for part in _walk_parts(payload):
        headers = _header_message(part.get("headers", []))
        mime_type = (part.get("mimeType") or headers.get_content_type()).lower()

        if _is_attachment(part, headers):
            found.attachments.append(_attachment(part, headers))
            continue

        if mime_type.startswith("multipart/"):
            continue  # An empty multipart container, as in some drafts.

        if mime_type not in ("text/plain", "text/html"):
            # An inline image or calendar invite without a file name.
            found.attachments.append(_attachment(part, headers))
            continue

        data = part.get("body", {}).get("data")
        if data is None:
            continue

        text = _decode_text(
            decode_base64url(data), headers.get_content_charset(), message_id
        )
        if mime_type == "text/plain":
            found.plain.append(text)
        else:
            found.html.append(text)

    return found


def _parse_address_list(values: Iterable[str]) -> tuple[Address, ...]:
    decoded = [_decode_words(value) for value in values]
    pairs = getaddresses(decoded)
    return tuple(Address(name=name, email=email) for name, email in pairs if email)


def _parse_header_date(value: str | None) -> datetime | None:
    if not value:
        return None

    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None

    if moment.tzinfo is None:
        return None  # RFC 5322 "-0000": the zone is unknown.

    return moment


def _internal_date(resource: GmailResource) -> datetime:
    milliseconds = int(resource["internalDate"])
    return datetime.fromtimestamp(milliseconds / 1000, tz=UTC)


def _body_text(parts: _BodyParts) -> str:
    if parts.plain:
        texts = [text.replace("\r\n", "\n").strip("\n") for text in parts.plain]
        return "\n\n".join(texts)

    return "\n\n".join(html_to_text(html) for html in parts.html)


def _is_outbound(
    labels: frozenset[str], sender: Address | None, owner_addresses: frozenset[str]
) -> bool:
    if SENT_LABEL in labels:
        return True

    return sender is not None and sender.email.lower() in owner_addresses


def unwrap_draft(resource: GmailResource) -> GmailResource:
    """Return the message inside a ``users.drafts.get`` resource.

    Parameters:
      resource: A draft resource (``{"id": ..., "message": {...}}``) or a message.

    Returns:
      The message resource. A message is returned unchanged.
    """
    inner = resource.get("message")
    if isinstance(inner, Mapping) and "payload" in inner:
        return inner

    return resource


def parse_gmail_message(
    resource: GmailResource, *, owner_addresses: Iterable[str] = ()
) -> MailMessage:
    """Parse a Gmail message fetched with ``format=full``.

    Parameters:
      resource: The decoded JSON of ``users.messages.get``, or of
        ``users.drafts.get`` whose ``message`` is then parsed.
      owner_addresses: The mailbox owner's addresses. A message from one of
        them counts as outbound even without the SENT label.

    Returns:
      The parsed message. ``sent_at`` is ``internalDate`` in UTC, because the
      Date header is written by the sender's client and may be wrong or missing.

    Raises:
      KeyError: When ``id`` or ``internalDate`` is missing.
      ValueError: When a body is not valid base64url.
    """
    message = unwrap_draft(resource)
    message_id = str(message["id"])
    payload = message.get("payload", {})
    headers = _header_message(payload.get("headers", []))
    parts = _collect_parts(payload, message_id)

    senders = _parse_address_list(headers.get_all("From", []))
    sender = senders[0] if senders else None
    recipients = _parse_address_list(
        [*headers.get_all("To", []), *headers.get_all("Cc", [])]
    )
    labels = frozenset(message.get("labelIds", []))
    owners = frozenset(address.lower() for address in owner_addresses)
    rfc822_id = headers.get("Message-ID")

    return MailMessage(
        external_id=message_id,
        thread_id=str(message.get("threadId", message_id)),
        sent_at=_internal_date(message),
        sender=sender,
        recipients=recipients,
        subject=_decode_words(headers.get("Subject", "")),
        text=_body_text(parts),
        html_present=bool(parts.html),
        attachments=tuple(parts.attachments),
        labels=labels,
        is_outbound=_is_outbound(labels, sender, owners),
        rfc822_message_id=rfc822_id.strip() if rfc822_id else None,
        header_date=_parse_header_date(headers.get("Date")),
    )
