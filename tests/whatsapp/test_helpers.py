"""Phone normalisation, message keys and sender names."""

from __future__ import annotations

from pathlib import Path

import pytest

from wallie.whatsapp import normalize_phone, parse_export


@pytest.mark.parametrize(
    "text, region, expected",
    [
        ("+41 55 501 01 23", None, "+41555010123"),
        ("+1 555 010 0199", None, "+15550100199"),
        ("+1 (555) 010-0199", "GB", "+15550100199"),
        ("07700 900123", "GB", "+447700900123"),
        ("07700 900123", None, None),
        ("+12 555 0178", None, None),
        ("Priya Shah", "GB", None),
        ("12", "GB", None),
    ],
)
def test_normalize_phone(text: str, region: str | None, expected: str | None) -> None:
    assert normalize_phone(text, region) == expected


def test_bidi_wrapped_number_sender(tmp_path: Path) -> None:
    path = tmp_path / "chat.txt"
    path.write_text("12/01/2024, 09:00 - \u202a+1 555 010 0199\u202c: Hi\n", "utf-8")

    (message,) = parse_export(path).messages()

    assert message.sender == "+1 555 010 0199"
    assert message.sender_phone == "+15550100199"


def test_unsaved_contact_with_number(tmp_path: Path) -> None:
    path = tmp_path / "chat.txt"
    path.write_text(
        "12/01/2024, 09:00 - +44 7700 900123 ~\u202fKlaas: Hi\n"
        "12/01/2024, 09:01 - ~\u202fLena: Hello\n",
        "utf-8",
    )
    chat = parse_export(path)
    first, second = chat.messages()

    assert first.sender == "Klaas"
    assert first.sender_phone == "+447700900123"
    assert second.sender == "Lena"
    assert second.sender_phone is None
    assert chat.participants == ["Klaas", "Lena"]


def test_local_number_uses_default_region(tmp_path: Path) -> None:
    path = tmp_path / "chat.txt"
    path.write_text("12/01/2024, 09:00 - 07700 900123: Hi\n", "utf-8")

    (message,) = parse_export(path, default_region="GB").messages()

    assert message.sender_phone == "+447700900123"


_EARLY = (
    "12/01/2024, 09:00 - Ana: ok\n"
    "12/01/2024, 09:00 - Ana: ok\n"
    "12/01/2024, 09:05 - Ben: Price is 30\n"
)
_LATER = _EARLY + "13/01/2024, 10:00 - Ana: ok\n13/01/2024, 10:00 - Ben: new\n"


def test_keys_stable_across_overlap(tmp_path: Path) -> None:
    early = tmp_path / "early.txt"
    later = tmp_path / "later.txt"
    early.write_text(_EARLY, "utf-8")
    later.write_text("\n" + _LATER.replace("\n", "\r\n"), "utf-8")

    early_keys = [m.key for m in parse_export(early).messages()]
    later_keys = [m.key for m in parse_export(later).messages()]

    assert later_keys[:3] == early_keys
    assert early_keys[0] != early_keys[1]
    assert len(set(later_keys)) == 5


def test_caption_after_attachment(tmp_path: Path) -> None:
    path = tmp_path / "chat.txt"
    path.write_text(
        "12/01/2024, 09:00 - Ana: IMG-1.jpg (file attached)\nNew brochure\n"
        "12/01/2024, 09:01 - Ana: STK-1.webp (file attached)\n"
        "12/01/2024, 09:02 - Ana: report.pdf (file attached)\n",
        "utf-8",
    )
    first, second, third = parse_export(path).messages()

    assert first.text == "New brochure"
    assert first.attachments[0].kind == "image"
    assert second.attachments[0].kind == "sticker"
    assert third.attachments[0].kind == "document"
    assert not third.attachments[0].needs_transcription


@pytest.mark.parametrize(
    "body",
    ["Diese Nachricht wurde gelöscht.", "Mensagem apagada", "Se eliminó este mensaje."],
)
def test_translated_deleted_notice(tmp_path: Path, body: str) -> None:
    path = tmp_path / "chat.txt"
    path.write_text(f"12/01/2024, 09:00 - Ana: {body}\n", "utf-8")

    (message,) = parse_export(path).messages()

    assert message.is_deleted
    assert message.text == ""


@pytest.mark.parametrize(
    "body, kind",
    [
        ("<Medien ausgeschlossen>", "other"),
        ("<Mídia oculta>", "other"),
        ("<Multimedia omitido>", "other"),
        ("video omitted", "video"),
        ("sticker omitted", "sticker"),
        ("document omitted", "document"),
        ("audio omitted", "audio"),
        ("foto.jpg (arquivo anexado)", "image"),
    ],
)
def test_translated_media_placeholders(tmp_path: Path, body: str, kind: str) -> None:
    path = tmp_path / "chat.txt"
    path.write_text(f"12/01/2024, 09:00 - Ana: {body}\n", "utf-8")

    (message,) = parse_export(path).messages()

    assert message.attachments[0].kind == kind
    assert message.text == ""


def test_system_line_with_colon_in_subject(tmp_path: Path) -> None:
    path = tmp_path / "chat.txt"
    path.write_text(
        '12/01/2024, 09:00 - Ana changed the subject from "Q1: leads" to "Q2"\n'
        "12/01/2024, 09:01 - Ben left\n",
        "utf-8",
    )
    first, second = parse_export(path).messages()

    assert first.kind == "system"
    assert first.system_event == "subject_changed"
    assert second.system_event == "left"
