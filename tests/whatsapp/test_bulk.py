"""Bulk reading gives the same messages and counts as the line-aware reading."""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

import pytest

from wallie.whatsapp import ParsedMessage, bulk, parse_export, source
from wallie.whatsapp.bulk import OCCURRENCE_WINDOW, BulkReader
from wallie.whatsapp.patterns import (
    _DELETED,
    _LIVE_LOCATION,
    NOTICE_FIRST,
    NOTICE_LAST,
    SHORT_NOTICE_LAST,
    sender_system_event,
    special_body,
)

#: An Android export with the cases that the bulk reading hands over to the
#: line-aware reading. It has continuation lines and a line before the first
#: header. It has system lines, notices under a sender, placeholders,
#: markers, locations and identical messages. It also has an invalid date, a
#: header of another shape, a sender without a space after the colon, a
#: quoted name and format marks.
MIXED_EXPORT = "\n".join(
    [
        "text before the first header",
        "13/01/2021, 08:00 - Messages and calls are end-to-end encrypted.",
        "13/01/2021, 08:01 - Ana Costa: Hello",
        "13/01/2021, 08:01 - Ana Costa: Hello",
        "13/01/2021, 08:01 - +44 7700 900123: Hello",
        "13/01/2021, 08:02 - Ben: line one",
        "line two: with a colon 18:00",
        "12/05 is not a header",
        "",
        "13/01/2021, 08:03 - Ben: <Media omitted>",
        "13/01/2021, 08:04 - Ben: IMG-20210113-WA0001.jpg (file attached)",
        "a caption",
        "13/01/2021, 08:05 - Ana Costa: This message was deleted",
        "13/01/2021, 08:06 - Ana Costa: fixed <This message was edited>",
        "13/01/2021, 08:07 - Ana Costa: location: https://maps.example/?q=1,2",
        "13/01/2021, 08:08 - Group: Ana added you",
        "13/01/2021, 08:09 - Ben:no space",
        "13/01/2021, 08:09 - Ben:\u00a0no-break space",
        "13/01/2021, 08:10 - Ana \u201cA\u201d: quoted name",
        "31/02/2021, 08:11 - Ana Costa: invalid date",
        "after the invalid date",
        "14/01/2021, 08:12 - Ana Costa: \u200eback to normal\u200f   ",
        "[14/01/2021, 08:13:00] Ana Costa: another shape",
        "14/01/2021, 08:14 - Ben: and 2 more",
        "14/01/2021, 08:15 - Ben: last message",
        "with a last line",
    ]
)


def _read(path: Path) -> tuple[list[ParsedMessage], dict[str, object], list[str]]:
    """Parse ``path`` and return its messages, report and participants."""
    with parse_export(path, fallback_date_order="dmy", default_region="GB") as chat:
        messages = list(chat.messages())
        return messages, dataclasses.asdict(chat.report), chat.participants


def _compare(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bulk = _read(path)
    with monkeypatch.context() as patch:
        patch.setattr(
            BulkReader,
            "read",
            lambda self, text, state: self._export._read_block(text, state),
        )
        careful = _read(path)

    # Then: the messages, counts and participants are the same.
    assert bulk[0] == careful[0]
    assert [type(message) for message in bulk[0]] == [type(m) for m in careful[0]]
    assert bulk[1] == careful[1]
    assert bulk[2] == careful[2]


#: The mixed export without its header of another shape, which sends the
#: whole block it is in to the line-aware reading.
ONE_SHAPE_EXPORT = MIXED_EXPORT.replace(
    "[14/01/2021, 08:13:00] Ana Costa: another shape\n", ""
)


@pytest.mark.parametrize("export", [MIXED_EXPORT, ONE_SHAPE_EXPORT])
@pytest.mark.parametrize("block_size", [1 << 20, 64, 200])
@pytest.mark.parametrize("ending", ["\n", "\r\n"])
def test_bulk_matches_line_aware_reading(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    export: str,
    block_size: int,
    ending: str,
) -> None:
    # Given: a mixed export, read in blocks of several sizes.
    path = tmp_path / "chat.txt"
    path.write_text(export.replace("\n", ending) + ending, "utf-8", newline="")
    monkeypatch.setattr(source, "BLOCK_SIZE", block_size)

    # When / Then: both readings agree.
    _compare(path, monkeypatch)


def test_bulk_counts_mixed_export(tmp_path: Path) -> None:
    # Given: the mixed export.
    path = tmp_path / "chat.txt"
    path.write_text(MIXED_EXPORT + "\n", "utf-8")

    # When: it is read in bulk.
    messages, report, participants = _read(path)

    # Then: the handed-over cases kept their meaning.
    texts = [message.text for message in messages]
    assert report["unparsed_lines"] == 4
    assert report["messages"] == len(messages) == 17
    assert report["continuation_lines"] == 5
    assert messages[0].system_event == "encryption"
    assert messages[1].key != messages[2].key
    assert messages[4].text == (
        "line one\nline two: with a colon 18:00\n12/05 is not a header"
    )
    assert messages[6].attachments[0].file_name == "IMG-20210113-WA0001.jpg"
    assert messages[7].is_deleted
    assert messages[8].is_edited
    assert messages[9].is_location
    assert messages[10].system_event == "added"
    assert messages[13].system_event == "other"
    assert "back to normal" in texts
    assert participants == ["+447700900123", "Ana Costa", "Ben"]


def test_bulk_occurrence_window(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given: identical messages that come back, out of order, after more
    # timestamps than the window keeps, and others that come back within it.
    window_end = OCCURRENCE_WINDOW + 50
    minutes = [*range(window_end), *range(10), *range(window_end - 10, window_end)]
    lines = [
        f"{1 + minute // 1440:02d}/01/2021, {minute // 60 % 24:02d}:{minute % 60:02d}"
        " - Ana: same"
        for minute in minutes
    ]
    path = tmp_path / "chat.txt"
    path.write_text("\n".join(lines) + "\n", "utf-8")

    # When / Then: both readings give the same keys.
    _compare(path, monkeypatch)


def test_short_notice_last_characters() -> None:
    # Given: every deletion and live location notice in the patterns.
    phrases = [
        phrase
        for pattern in (_DELETED, _LIVE_LOCATION)
        for phrase in re.sub(r"\(\?:|\)|\\\.\?", "", pattern.pattern).split("|")
    ]

    # Then: each ends with a character of SHORT_NOTICE_LAST, in both cases.
    for phrase in phrases:
        assert phrase[-1] in SHORT_NOTICE_LAST
        assert phrase[-1].upper() in SHORT_NOTICE_LAST
    assert "." in SHORT_NOTICE_LAST


def test_notice_guards_cover_case_insensitive_letters() -> None:
    # Given: every BMP character that matches a guard letter case-insensitively.
    for letters in (NOTICE_FIRST, NOTICE_LAST, SHORT_NOTICE_LAST, frozenset("gGdD")):
        for letter in {char.lower() for char in letters if char.isascii()}:
            pattern = re.compile(re.escape(letter), re.IGNORECASE)
            matching = {
                chr(code) for code in range(0x10000) if pattern.fullmatch(chr(code))
            }

            # Then: the guard contains all of them.
            assert matching <= letters


@pytest.mark.parametrize(
    ("body", "event"),
    [
        ("Ana added you", "added"),
        ("ANA ADDED YOU", "added"),
        ("You were added", "added"),
        ("Ana joined using this group's invite lin\u212a", "joined"),
        ("Ana created group \"Sales\"", "group_created"),
        ("Ana turned on disappearing messages. Tap to change.", "disappearing_messages"),
        ("Your security code with Ana changed. Tap to learn more.", "security_code"),
        ("Messages and calls are end-to-end encrypted. No one else", "encryption"),
        ("need it by Friday", None),
        ("quote price", None),
    ],
)
def test_sender_notice_guard(body: str, event: str | None) -> None:
    assert sender_system_event(body) == event


@pytest.mark.parametrize(
    ("body", "special"),
    [
        ("This message was deleted.", True),
        ("DIT BERICHT IS VERWIJDERD", True),
        ("Live-Standort wird geteilt.", True),
        ("<Media omitted>", True),
        ("quote price ", False),
        ("", True),
        ("location: https://maps.example/?q=1", True),
        ("quote price", False),
        ("need it by Friday", False),
    ],
)
def test_special_body_guard(body: str, special: bool) -> None:
    assert (special_body(body) is not None) is special


def test_c_extension_is_built_in_ci() -> None:
    # Given: a CI run, where the install must have compiled the parser's C
    # extension, or the speed figures of docs/benchmarks.md would not hold.
    if os.environ.get("CI") != "true":
        pytest.skip("the C extension is optional outside CI (CI=true not set)")

    # When / Then: it imports and the parser uses it.
    from wallie.whatsapp import _speedups

    assert bulk.SPEEDUPS is _speedups
