"""Tests for Gmail MIME parsing and HTML to text conversion."""

from __future__ import annotations

import base64
import logging
from datetime import UTC, datetime
from typing import Any

import pytest
from conftest import load_corpus

from wallie.mail.gmail_mime import decode_base64url, parse_gmail_message
from wallie.mail.html_text import html_to_text
from wallie.mail.message import Address, Attachment


def encode(text: str, charset: str = "utf-8", *, padded: bool = True) -> str:
    data = base64.urlsafe_b64encode(text.encode(charset)).decode()
    return data if padded else data.rstrip("=")


def part(mime_type: str, data: str | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"size": len(data or "")}
    if data is not None:
        body["data"] = data
    headers = extra.pop("headers", [])
    return {"mimeType": mime_type, "filename": "", "headers": headers, "body": body, **extra}


def message(payload: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "id": "m1",
        "threadId": "t1",
        "labelIds": ["INBOX"],
        "internalDate": "1715000000000",
        "payload": payload,
        **extra,
    }


def test_single_part_without_parts() -> None:
    resource = load_corpus("gmail/message_full_single_part_text_plain_no_parts.json")

    parsed = parse_gmail_message(resource)

    assert parsed.text == "The actual message text goes here"
    assert parsed.subject == "Subject Text"
    assert parsed.sender == Address(name="", email="lena.vos@example.com")
    assert parsed.recipients == (Address(name="", email="lena.vos@example.com"),)
    assert parsed.attachments == ()
    assert parsed.html_present is False
    assert parsed.sent_at == datetime(2015, 12, 27, 0, 3, 23, tzinfo=UTC)
    assert parsed.is_outbound is True  # SENT label
    assert parsed.rfc822_message_id == "<CAFAKE3c434144735a4c5277576a7a@mail.example.com>"
    assert parsed.header_date is not None
    assert parsed.header_date.utcoffset() is not None


@pytest.mark.parametrize(
    "name",
    [
        "gmail/message_full_body_base64url_padded_synthetic.json",
        "gmail/message_full_body_base64url_unpadded_synthetic.json",
    ],
)
def test_base64url_padding_forms(name: str) -> None:
    parsed = parse_gmail_message(load_corpus(name))

    assert parsed.text == "Hallo Sam,\nde offerte van €1.250,00 staat klaar.\nGroet, Lena."
    assert parsed.subject == "Offerte €1.250"
    assert parsed.sent_at.tzinfo is UTC
    assert parsed.is_outbound is False


def test_outbound_from_owner_without_sent_label() -> None:
    resource = load_corpus("gmail/message_full_body_base64url_padded_synthetic.json")

    parsed = parse_gmail_message(resource, owner_addresses=["Lena.Vos@example.com"])

    assert parsed.is_outbound is True


def test_draft_envelope_alternative() -> None:
    resource = load_corpus("gmail/message_full_draft_alternative_no_content_type_header.json")

    parsed = parse_gmail_message(resource)

    assert parsed.external_id == "1528457ea4ca6803"
    assert parsed.text == "Can it parse *draft *now? Sure can!"
    assert parsed.html_present is True
    assert parsed.labels == frozenset({"DRAFT"})


def test_draft_without_content_type_header() -> None:
    payload = part(
        "multipart/alternative",
        headers=[{"name": "Subject", "value": "Draft"}],
        parts=[
            part("text/plain", encode("Plain draft body")),
            part("text/html", encode("<p>HTML draft body</p>")),
        ],
    )

    parsed = parse_gmail_message({"id": "d1", "message": message(payload)})

    assert parsed.text == "Plain draft body"
    assert parsed.html_present is True
    assert parsed.sender is None


def test_text_plain_attachment_is_not_body() -> None:
    resource = load_corpus("gmail/message_full_mixed_with_text_plain_attachment.json")

    parsed = parse_gmail_message(resource)

    assert parsed.text == "cool *stuff*"
    assert len(parsed.attachments) == 1
    attachment = parsed.attachments[0]
    assert attachment.filename == "a_text_file.txt"
    assert attachment.mime_type == "text/plain"
    assert attachment.size == 277400
    assert attachment.attachment_id is not None


def test_mixed_alternative_with_jpegs() -> None:
    resource = load_corpus("gmail/message_full_mixed_alternative_plus_jpeg_attachments.json")

    parsed = parse_gmail_message(resource)

    assert parsed.text == "cool *stuff*"
    assert parsed.html_present is True
    assert [a.filename for a in parsed.attachments] == [
        "a3Ln90e_460s.jpg",
        "feelthebern.jpg",
    ]
    assert [a.size for a in parsed.attachments] == [66308, 100446]
    assert all(a.mime_type == "image/jpeg" for a in parsed.attachments)


def test_disposition_attachment_without_filename() -> None:
    disposition = {"name": "Content-Disposition", "value": "attachment"}
    payload = part(
        "multipart/mixed",
        parts=[
            part("text/plain", encode("Body")),
            part("text/plain", encode("Not the body"), headers=[disposition]),
        ],
    )

    parsed = parse_gmail_message(message(payload))

    assert parsed.text == "Body"
    assert parsed.attachments == (
        Attachment(filename="", mime_type="text/plain", size=16, attachment_id=None),
    )


def test_nested_html_only_falls_back() -> None:
    html = (
        "<html><head><title>t</title><style>p{}</style></head><body>"
        "<p>Hello&nbsp;Sam,</p><p>Price: &euro;10<br>Thanks</p>"
        "<script>alert(1)</script><ul><li>one</li><li>two</li></ul></body></html>"
    )
    payload = part(
        "multipart/mixed",
        parts=[part("multipart/related", parts=[part("text/html", encode(html))])],
    )

    parsed = parse_gmail_message(message(payload))

    assert parsed.text == "Hello Sam,\n\nPrice: €10\nThanks\n\n- one\n\n- two"
    assert parsed.html_present is True


def test_declared_charset_is_used() -> None:
    content_type = {"name": "Content-Type", "value": "text/plain; charset=iso-8859-1"}
    payload = part("text/plain", encode("Grüße", "iso-8859-1"), headers=[content_type])

    parsed = parse_gmail_message(message(payload))

    assert parsed.text == "Grüße"


def test_invalid_bytes_replaced_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    content_type = {"name": "Content-Type", "value": "text/plain; charset=utf-8"}
    data = base64.urlsafe_b64encode(b"caf\xe9").decode()
    payload = part("text/plain", data, headers=[content_type])

    with caplog.at_level(logging.WARNING, logger="wallie.mail.gmail_mime"):
        parsed = parse_gmail_message(message(payload))

    assert parsed.text == "caf\ufffd"
    assert "m1" in caplog.text


def test_unknown_charset_falls_back() -> None:
    content_type = {"name": "Content-Type", "value": "text/plain; charset=x-unknown"}
    payload = part("text/plain", encode("plain ascii"), headers=[content_type])

    parsed = parse_gmail_message(message(payload))

    assert parsed.text == "plain ascii"


def test_address_headers_parsed() -> None:
    headers = [
        {"name": "From", "value": '"Vos, Lena" <lena.vos@example.com>'},
        {"name": "To", "value": "Sam <sam@example.org>, kim@example.net"},
        {"name": "Cc", "value": "=?UTF-8?Q?J=C3=B6rg?= <jorg@example.com>"},
        {"name": "Date", "value": "not a date"},
    ]
    payload = part("text/plain", encode("x"), headers=headers)

    parsed = parse_gmail_message(message(payload))

    assert parsed.sender == Address(name="Vos, Lena", email="lena.vos@example.com")
    assert parsed.recipients == (
        Address(name="Sam", email="sam@example.org"),
        Address(name="", email="kim@example.net"),
        Address(name="Jörg", email="jorg@example.com"),
    )
    assert parsed.header_date is None


def test_decode_base64url_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="Invalid base64url"):
        decode_base64url("a")


def test_decode_base64url_unpadded() -> None:
    assert decode_base64url("YWI") == b"ab"
    assert decode_base64url("YWI=") == b"ab"


def test_html_to_text_broken_markup() -> None:
    assert html_to_text("<div>a<b>b</div><p>c") == "ab\n\nc"
