"""Parse every corpus export and compare with values written by hand."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from wallie.whatsapp import parse_export

from .corpus_expected import EXPECTED, Expected


@pytest.mark.parametrize(
    "expected", EXPECTED, ids=[f"{e.file[:2]}-{e.fallback}" for e in EXPECTED]
)
def test_corpus_file_matches_hand_values(whatsapp_corpus: Path, expected: Expected) -> None:
    chat = parse_export(whatsapp_corpus / expected.file, fallback_date_order=expected.fallback)
    messages = list(chat.messages())
    system = [message for message in messages if message.kind == "system"]
    media = sum(len(message.attachments) for message in messages)

    assert len(messages) == expected.messages
    assert len(system) == expected.system
    assert media == expected.media
    assert chat.participants == expected.participants
    assert messages[0].timestamp == datetime.datetime.fromisoformat(expected.first)
    assert messages[-1].timestamp == datetime.datetime.fromisoformat(expected.last)
    assert chat.date_order == expected.date_order
    assert chat.date_order_source == expected.date_order_source
    assert chat.report.unparsed_lines == expected.unparsed
    assert chat.report.messages == expected.messages
    assert chat.report.system_messages == expected.system
    assert chat.report.media == expected.media

    by_line = {message.line_number: message for message in messages}
    for line_number, body in expected.bodies.items():
        assert by_line[line_number].text == body, f"line {line_number}"


def test_system_events_have_no_sender(whatsapp_corpus: Path) -> None:
    for expected in EXPECTED:
        chat = parse_export(whatsapp_corpus / expected.file)
        for message in chat.messages():
            if message.kind == "system":
                assert message.sender is None
                assert message.sender_phone is None
                assert message.system_event


def test_group_name_sender_is_system(whatsapp_corpus: Path) -> None:
    chat = parse_export(whatsapp_corpus / "09_android_de-style_dd.mm.yyyy_whatstk-pokemon.txt")
    first = next(iter(chat.messages()))

    assert first.kind == "system"
    assert first.system_event == "encryption"
    assert "Pokemon Chat" not in chat.participants


def test_voice_note_attachment(whatsapp_corpus: Path) -> None:
    names = [
        ("01_android_en-US_24h_group_whatsr.txt", 15),
        ("03_ios_en-US_24h_bracket_whatsr.txt", 15),
        ("05_android_de-DE_24h_bom-lines_whatsr.txt", 15),
        ("06_ios_de-DE_12h_bom-in-bracket_whatsr.txt", 15),
    ]
    for name, line_number in names:
        messages = {m.line_number: m for m in parse_export(whatsapp_corpus / name).messages()}
        (attachment,) = messages[line_number].attachments

        assert attachment.kind == "audio", name
        assert attachment.file_name == "PTT-20180129-WA0025.opus", name
        assert attachment.needs_transcription, name
        assert messages[line_number].text == "", name


def test_media_placeholders_by_kind(whatsapp_corpus: Path) -> None:
    ios = {m.line_number: m for m in parse_export(
        whatsapp_corpus / "23_ios_en-NL_crlf-terminators_lf-inside_lrm_edited_deleted_reconstructed.txt"
    ).messages()}

    assert ios[6].attachments[0].kind == "image"
    assert ios[6].attachments[0].file_name is None
    assert ios[7].attachments[0].file_name == "00000012-PHOTO-2025-10-19-09-15-11.jpg"
    assert ios[10].attachments[0].kind == "audio"
    assert ios[10].attachments[0].needs_transcription
    german = {m.line_number: m for m in parse_export(
        whatsapp_corpus / "06_ios_de-DE_12h_bom-in-bracket_whatsr.txt"
    ).messages()}
    assert german[20].attachments[0].kind == "image"


def test_deleted_and_edited_flags(whatsapp_corpus: Path) -> None:
    path = whatsapp_corpus / (
        "22_android_en-GB_lowercase-ampm_nnbsp_unsaved-number_reconstructed-whatstk140.txt"
    )
    messages = {m.line_number: m for m in parse_export(path).messages()}

    assert messages[5].is_edited
    assert messages[5].text == "Yes until Friday"
    assert messages[6].is_deleted
    assert messages[7].is_deleted
    assert messages[7].text == ""
    assert not messages[3].is_deleted
    assert messages[1].sender == "+44 7700 900123"
    assert messages[1].sender_phone == "+447700900123"


def test_crlf_file_keeps_pasted_header(whatsapp_corpus: Path) -> None:
    path = whatsapp_corpus / (
        "23_ios_en-NL_crlf-terminators_lf-inside_lrm_edited_deleted_reconstructed.txt"
    )
    chat = parse_export(path)
    messages = {m.line_number: m for m in chat.messages()}

    assert 5 not in messages
    assert chat.report.suspicious_header_lines == 1
    assert messages[9].is_deleted
    assert messages[8].is_edited
    assert messages[12].sender == "Klaas"
    assert messages[11].kind == "system"
    assert messages[11].system_event == "joined"
    assert messages[2].system_event == "added"


def test_mixed_formats_report(whatsapp_corpus: Path) -> None:
    chat = parse_export(whatsapp_corpus / "15_mixed-formats-in-one-file_chatminer-testlog.txt")
    lines = [m.line_number for m in chat.messages()]
    report = chat.report

    assert lines == [1, 2, 3, 5, 11, 12, 13, 14]
    assert report.complete
    assert not report.ok
    assert report.unparsed_lines == 15
    assert [s.line_number for s in report.unparsed_samples] == [15, 16, 17, 18, 19]
    assert "header shape differs" in report.unparsed_samples[0].reason
    assert report.unparsed_samples[0].excerpt.startswith("9/24/2019 11:30 p.m.")


def test_impossible_pm_hours_counted(whatsapp_corpus: Path) -> None:
    chat = parse_export(
        whatsapp_corpus / "16_ios-style_bracket_dd-mm-yy_12h-p.m._impossible-13pm_chatminer.txt"
    )
    list(chat.messages())

    assert chat.report.clock_anomalies == 2
    assert chat.report.ok


def test_location_flags(whatsapp_corpus: Path) -> None:
    messages = {m.line_number: m for m in parse_export(
        whatsapp_corpus / "05_android_de-DE_24h_bom-lines_whatsr.txt"
    ).messages()}

    assert messages[32].is_location
    assert messages[33].is_location
    assert not messages[31].is_location


def test_explicit_order_is_reported(whatsapp_corpus: Path) -> None:
    chat = parse_export(
        whatsapp_corpus / "19_android_dd-mm-yyyy_short-group_pustur.txt", date_order="mdy"
    )
    first = next(iter(chat.messages()))

    assert chat.date_order == "mdy"
    assert chat.date_order_source == "explicit"
    assert first.timestamp == datetime.datetime(2017, 6, 3, 0, 45)


def test_keys_unique_within_file(whatsapp_corpus: Path) -> None:
    for expected in EXPECTED:
        keys = [m.key for m in parse_export(whatsapp_corpus / expected.file).messages()]
        assert len(set(keys)) == len(keys), expected.file
