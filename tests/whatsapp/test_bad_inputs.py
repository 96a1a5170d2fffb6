"""Rejected and partial inputs: non-exports, encodings, unsafe zips, streams."""

from __future__ import annotations

import io
import stat
import zipfile
from pathlib import Path

import pytest

from wallie.whatsapp import (
    ArchiveLimitError,
    ArchiveLimits,
    ChatNotFoundError,
    ExportEncodingError,
    DateOrderMismatchError,
    InvalidDateOrderError,
    NoMessagesError,
    NotAnExportError,
    UnsafeArchiveError,
    extract_member,
    parse_export,
)

CHAT = (
    "12/01/2024, 09:00 - Ana: Hello\n"
    "12/01/2024, 09:01 - Ben: <Media omitted>\n"
    "13/01/2024, 10:00 - Ana: IMG-20240113-WA0001.jpg (file attached)\n"
    "13/01/2024, 10:01 - Ben: PTT-20240113-WA0002.opus (file attached)\n"
)


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_non_export_names_first_line(tmp_path: Path) -> None:
    text = "\n\nDear customer,\nthis is an invoice: 12/01/2024 total 30 EUR\n" * 3
    path = _write(tmp_path, "invoice.txt", text.encode())

    with pytest.raises(NotAnExportError) as caught:
        parse_export(path)

    assert caught.value.line_number == 3
    assert caught.value.excerpt == "Dear customer,"
    assert "line 3" in str(caught.value)


def test_long_line_excerpt_truncated(tmp_path: Path) -> None:
    path = _write(tmp_path, "long.txt", ("x" * 500 + "\n").encode())

    with pytest.raises(NotAnExportError) as caught:
        parse_export(path)

    assert len(caught.value.excerpt) == 60
    assert caught.value.excerpt.endswith("…")


def test_empty_file_rejected(tmp_path: Path) -> None:
    path = _write(tmp_path, "empty.txt", b"")

    with pytest.raises(NotAnExportError) as caught:
        parse_export(path)

    assert caught.value.line_number == 0
    assert "empty" in str(caught.value)


@pytest.mark.parametrize(
    "encoding, prefix",
    [("utf-16-le", b"\xff\xfe"), ("utf-16-be", b"\xfe\xff"), ("utf-16-le", b"")],
)
def test_utf16_export(tmp_path: Path, encoding: str, prefix: bytes) -> None:
    path = _write(tmp_path, "chat.txt", prefix + CHAT.encode(encoding))

    messages = list(parse_export(path).messages())

    assert [m.sender for m in messages] == ["Ana", "Ben", "Ana", "Ben"]
    assert messages[0].text == "Hello"


def test_undecodable_bytes_name_offset(tmp_path: Path) -> None:
    data = CHAT.encode() + b"13/01/2024, 10:02 - Ana: caf\xe9\n"
    path = _write(tmp_path, "latin1.txt", data)

    with pytest.raises(ExportEncodingError) as caught:
        parse_export(path)

    assert caught.value.offset == data.index(b"\xe9")
    assert caught.value.encoding == "utf-8-sig"
    assert "byte offset" in str(caught.value)


def test_partial_file_reports_lines(tmp_path: Path) -> None:
    text = "garbage before\n" + CHAT + "[13/01/2024, 10:05:00] Ana: other shape\nmore\n"
    chat = parse_export(_write(tmp_path, "partial.txt", text.encode()))

    messages = list(chat.messages())

    assert len(messages) == 4
    assert chat.report.unparsed_lines == 3
    assert [s.line_number for s in chat.report.unparsed_samples] == [1, 6, 7]
    assert not chat.report.ok


def test_no_messages_raises_at_end(tmp_path: Path) -> None:
    path = _write(tmp_path, "days.txt", b"31/02/2024, 09:00 - Ana: Hi\n")
    chat = parse_export(path, date_order="dmy")

    with pytest.raises(NoMessagesError) as caught:
        list(chat.messages())

    assert caught.value.line_number == 1
    assert "invalid" in caught.value.reason


def test_invalid_date_order_rejected(tmp_path: Path) -> None:
    path = _write(tmp_path, "chat.txt", CHAT.encode())

    with pytest.raises(InvalidDateOrderError):
        parse_export(path, date_order="ydm")
    with pytest.raises(InvalidDateOrderError):
        parse_export(path, fallback_date_order="dm")


@pytest.mark.parametrize(
    ("text", "order", "reason"),
    [
        (b"25/01/2024, 09:00 - Ana: Hi\n02/03/2024, 09:05 - Ana: Bye\n", "mdy", "first number above 12"),
        (b"01/25/2024, 09:00 - Ana: Hi\n03/02/2024, 09:05 - Ana: Bye\n", "dmy", "second number above 12"),
        (b"18.01.24, 09:00 - Ana: Hi\n", "ymd", "do not start with a four-digit year"),
        (b"2024-01-18, 09:00 - Ana: Hi\n", "dmy", "start with a four-digit year"),
    ],
)
def test_forced_order_contradicting_file_rejected(
    tmp_path: Path, text: bytes, order: str, reason: str
) -> None:
    path = _write(tmp_path, "chat.txt", text)

    with pytest.raises(DateOrderMismatchError) as caught:
        parse_export(path, date_order=order)

    assert reason in str(caught.value)
    assert "--date-order" in str(caught.value)


def test_forced_order_kept_when_file_cannot_settle(tmp_path: Path) -> None:
    path = _write(tmp_path, "chat.txt", b"02/03/2024, 09:00 - Ana: Hi\n")

    chat = parse_export(path, date_order="mdy")

    assert [m.timestamp.month for m in chat.messages()] == [2]


def test_unseekable_stream(tmp_path: Path) -> None:
    class Pipe(io.RawIOBase):
        def __init__(self, data: bytes) -> None:
            self._data = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: bytearray) -> int:  # type: ignore[override]
            chunk = self._data.read(len(buffer))
            buffer[: len(chunk)] = chunk
            return len(chunk)

    stream = io.BufferedReader(Pipe(CHAT.encode()))
    with parse_export(stream, name="pipe") as chat:
        assert len(list(chat.messages())) == 4
        assert len(list(chat.messages())) == 4


def test_seekable_stream_twice() -> None:
    stream = io.BytesIO(b"\xef\xbb\xbf" + CHAT.encode())
    chat = parse_export(stream)

    assert [m.text for m in chat.messages()] == [m.text for m in chat.messages()]
    assert not stream.closed


def _zip(tmp_path: Path, members: dict[str, bytes], name: str = "export.zip") -> Path:
    path = tmp_path / name
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for member, data in members.items():
            archive.writestr(member, data)
    return path


def test_zip_links_media(tmp_path: Path) -> None:
    path = _zip(tmp_path, {
        "WhatsApp Chat with Ana.txt": CHAT.encode(),
        "IMG-20240113-WA0001.jpg": b"\xff\xd8jpeg",
        "PTT-20240113-WA0002.opus": b"OggS",
        "notes.txt": b"not the chat",
    })
    chat = parse_export(path)
    messages = list(chat.messages())

    assert chat.source.endswith("WhatsApp Chat with Ana.txt")
    assert messages[2].attachments[0].member == "IMG-20240113-WA0001.jpg"
    assert messages[3].attachments[0].member == "PTT-20240113-WA0002.opus"
    assert messages[3].attachments[0].needs_transcription
    assert messages[1].attachments[0].member is None

    target = extract_member(path, "IMG-20240113-WA0001.jpg", tmp_path / "media")
    assert target.read_bytes() == b"\xff\xd8jpeg"
    assert target.parent == (tmp_path / "media").resolve()


def test_zip_ios_chat_name(tmp_path: Path) -> None:
    path = _zip(tmp_path, {"_chat.txt": b"[12/01/2024, 09:00:00] Ana: Hi\n", "a.txt": b""})

    assert [m.text for m in parse_export(path).messages()] == ["Hi"]


def test_zip_without_chat(tmp_path: Path) -> None:
    path = _zip(tmp_path, {"a.txt": b"x", "b.txt": b"y"})

    with pytest.raises(ChatNotFoundError) as caught:
        parse_export(path)

    assert caught.value.candidates == ["a.txt", "b.txt"]


@pytest.mark.parametrize(
    "member", ["../evil.txt", "/etc/evil.txt", "media/../../evil.jpg", "C:/evil.jpg"]
)
def test_zip_slip_rejected(tmp_path: Path, member: str) -> None:
    path = _zip(tmp_path, {"_chat.txt": CHAT.encode(), member: b"x"})

    with pytest.raises(UnsafeArchiveError) as caught:
        parse_export(path)

    assert caught.value.member == member


def test_zip_symlink_rejected(tmp_path: Path) -> None:
    path = tmp_path / "link.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("_chat.txt", CHAT)
        link = zipfile.ZipInfo("IMG-1.jpg")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(link, "/etc/passwd")

    with pytest.raises(UnsafeArchiveError) as caught:
        parse_export(path)
    assert caught.value.reason == "symbolic link"

    with pytest.raises(UnsafeArchiveError):
        extract_member(path, "IMG-1.jpg", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_zip_bomb_ratio_rejected(tmp_path: Path) -> None:
    path = _zip(tmp_path, {"_chat.txt": CHAT.encode(), "VID-1.mp4": bytes(8 << 20)})

    with pytest.raises(ArchiveLimitError) as caught:
        parse_export(path)

    assert caught.value.member == "VID-1.mp4"
    assert caught.value.value > 100


def test_zip_total_size_limit(tmp_path: Path) -> None:
    path = _zip(tmp_path, {"_chat.txt": CHAT.encode(), "a.bin": b"\x01" * 5000})

    with pytest.raises(ArchiveLimitError) as caught:
        parse_export(path, limits=ArchiveLimits(max_total_size=4096))

    assert caught.value.member == ""
    assert caught.value.limit == 4096


def test_extract_size_cap(tmp_path: Path) -> None:
    path = _zip(tmp_path, {"_chat.txt": CHAT.encode(), "DOC-1.pdf": b"%PDF" * 1000})

    with pytest.raises(ArchiveLimitError):
        extract_member(path, "DOC-1.pdf", tmp_path / "out", max_size=1000)

    assert not (tmp_path / "out" / "DOC-1.pdf").exists()
