"""The C accelerator of the parser gives what the Python code gives.

``wallie/whatsapp/_speedups.c`` replaces three hot loops. Each function is
checked against the Python code it replaces: ``sha256_hex`` against
hashlib, ``split_block`` and ``count_dates`` against the regexes of
:mod:`wallie.whatsapp.bulk` and :mod:`wallie.whatsapp.scan`, and
``bulk_messages`` through whole parses with the accelerator and with
``bulk.SPEEDUPS`` set to None.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import io
import re
import zipfile
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wallie.errors import ConfigurationError
from wallie.settings import load_settings, reset_settings
from wallie.whatsapp import ParsedMessage, WhatsAppError, bulk, parse_export, source
from wallie.whatsapp.bulk import bulk_pattern
from wallie.whatsapp.header import (
    CLOCK,
    FORMAT_MARKS,
    HeaderShape,
    strip_block_marks,
    time_from_match,
)
from wallie.whatsapp.scan import Scan, _dates_pattern, scan_export

from .test_bulk import MIXED_EXPORT, ONE_SHAPE_EXPORT
from .test_properties import Message, Shape, _messages, _shapes, render, render_header

speedups = pytest.importorskip(
    "wallie.whatsapp._speedups",
    reason=(
        "the C accelerator wallie.whatsapp._speedups is not built; "
        "reinstall the package with a C compiler: pip install -e ."
    ),
    exc_type=ImportError,
)

#: The start of a header of any shape: an optional bracket, one to four
#: decimal digits of any script and a date separator. The C functions may
#: give up on a block only when one of its lines starts so.
_HEADER_START = re.compile(r"\[?\d{1,4}[/.\-]")

#: Characters that headers are made of, and the quotes and marks that end a
#: sender name, for texts that come close to headers without being exports.
_RISKY_ALPHABET = (
    '0123456789/.-[]:, \n AaPpMm\u202f\u00a0\u2013\u060c"\u201c\u201d\u00ab\u00bb'
    "\u0635\u0645\u0661bxyz\u00e9"
)

#: What follows a header on a line: sender names at the limits of the bulk
#: pattern (100 and 101 characters, quotes, a colon without a space after it),
#: a notice without a sender and bodies with trailing whitespace.
_RISKY_SENDERS = [
    "Ana: fine",
    "Ana:no space",
    "Ana:\u00a0no-break space",
    'Ana "A": quoted',
    "Ana \u201cA\u201d: quoted",
    "\u00abAna\u00bb: quoted",
    "Ana \u201d: quoted",
    "Ana \u00bb: quoted",
    "x" * 100 + ": longest name",
    "y" * 101 + ": name too long",
    "Messages and calls are end-to-end encrypted.",
    ": no name",
    "Ana: 2 units at 18:00",
    "Ana: ",
    "Ana: trailing whitespace \u00a0\u2003\x1f",
]

#: Lines that continue a message and start with neither a bracket nor a
#: decimal digit, so the C functions must not give up on them.
_PLAIN_CONTINUATIONS = [
    "line two: with a colon 18:00",
    "",
    "\u00a0indented",
    "a. m. 10:00 - x",
    "x" * 101 + ": not a sender",
    "\u00b2/3 squared, a digit but not a decimal one",
]

#: Lines that continue a message and start like a header of some shape.
_HEADER_LIKE_CONTINUATIONS = [
    "2 units",
    "12/05 is not a header",
    "2021-01-01 x",
    "1/1/20211:30 - x",
    "[not a header",
    "[1/1/21 not a header",
    "\u0663 Arabic-Indic digit",
]

#: An Android export in the 12-hour clock, in m/d/yy order, with every kind
#: of body that the bulk reading hands to the line-aware reading. It has
#: notices under a sender, placeholders, deletions, edits and locations. It
#: has bodies ending with ">", empty bodies, an invalid date, an invalid time
#: and hours that the 12-hour clock does not have. Some notices spell a
#: letter as dotless i or long s, which match "i" and "s" only in the
#: case-insensitive pattern, and one is too long to be a notice. A long body
#: in 2-, 3- and 4-byte UTF-8 characters makes a long key material.
NOTICES_EXPORT = "\n".join(
    [
        "1/13/21, 8:00 AM - Messages and calls are end-to-end encrypted.",
        "1/13/21, 8:01 AM - Ana: Messages and calls are end-to-end encrypted. "
        "No one outside of this chat can read them.",
        "1/13/21, 8:02 AM - Group: Ana added you",
        "1/13/21, 8:02 AM - Group: You were added",
        "1/13/21, 8:03 AM - Group: Ben joined using this group's invite link",
        '1/13/21, 8:04 AM - Ana: Ana created group "Sales"',
        "1/13/21, 8:05 AM - Ana: Ana turned on disappearing messages. Tap to change.",
        "1/13/21, 8:06 AM - Ana: <Media omitted>",
        "1/13/21, 8:07 AM - Ana: image omitted",
        "1/13/21, 8:08 AM - Ben: IMG-20210113-WA0001.jpg (file attached)",
        "a caption under the image",
        "1/13/21, 8:09 AM - Ben: <attached: 00000012-PHOTO-2021-01-13-08-09-00.jpg>",
        "1/13/21, 8:10 AM - Ben: This message was deleted",
        "1/13/21, 8:10 AM - Ben: You deleted this message.",
        "1/13/21, 8:11 AM - Ana: price is 30 <This message was edited>",
        "1/13/21, 8:12 AM - Ana: location: https://maps.google.com/?q=52.1,4.3",
        "1/13/21, 8:12 AM - Ana: Live location shared",
        "1/13/21, 8:13 AM - Ana: ends with >",
        "1/13/21, 8:13 AM - Ana: a -> b >",
        "1/13/21, 8:14 AM - Ana: ",
        "1/13/21, 8:14 AM - Ana: ",
        "1/13/21, 8:15 AM - Ben: need it by Friday",
        "1/13/21, 0:16 AM - Ben: hour zero",
        "1/13/21, 13:17 PM - Ben: hour thirteen",
        "2/31/21, 8:18 AM - Ana: invalid date",
        "after the invalid date",
        "1/14/21, 8:19 AM - Ana: back to normal",
        "1/14/21, 8:19 AM - Ana: back to normal",
        "1/14/21, 8:20 AM - Ana: see: http://example.com/x",
        "1/14/21, 8:21 AM - Ana: first line",
        "<Media omitted>",
        "1/14/21, 8:22 AM - Ana: 2 units",
        "12/05 is not a header",
        "1/14/21, 25:00 PM - Ana: invalid time",
        "1/14/21, 8:23 AM - +1 415 555 0100: from a number",
        "1/14/21, 8:24 AM - Ben: ANA ADDED YOU",
        "1/14/21, 8:25 AM - Ben: Good day Dave",
        "1/14/21, 8:26 AM - Group: Ana jo\u0131ned using this group's inv\u0131te link",
        "1/14/21, 8:27 AM - Group: Your \u017fecurity code with Ana changed.",
        '1/14/21, 8:28 AM - Group: Pedro created group "Sales"',
        "1/14/21, 8:29 AM - Group: Pedro turned on disappearing messages. Tap here.",
        "1/14/21, 8:30 AM - Ben: trailing whitespace \u00a0\u2003\x1f",
        "1/14/21, 8:30 AM - Ben: trailing whitespace \u00a0\u2003\x1f",
        "1/14/21, 8:31 AM - Ana: Messages and calls are end-to-end encrypted. "
        + "x" * 400,
        "1/14/21, 8:32 AM - Ben: " + "\u00e9\u20ac\U0001f600" * 120,
        "1/14/21, 8:33 AM - Ben: last one",
        "with a last line",
    ]
)

#: Block sizes of :func:`source.read_blocks`, in bytes: one block, a few
#: lines per block, and one line per block.
BLOCK_SIZES = [1 << 20, 200, 64, 1]


def _header_shape(shape: Shape) -> HeaderShape:
    """Return the :class:`HeaderShape` of the headers that ``shape`` renders."""
    return HeaderShape(
        bracketed=shape.bracketed,
        separator=shape.separator,
        comma=bool(shape.comma),
        seconds=shape.seconds,
        twelve_hour=shape.meridiem is not None,
        year_first=shape.order == "ymd",
    )


def _block_text(data: bytes) -> str:
    """Decode a rendered export into the LF-terminated, unmarked text of a block."""
    text = strip_block_marks(data.decode("utf-8").replace("\r\n", "\n"))
    assert text is not None
    return text


def _starts_like_header(lines: list[str]) -> bool:
    return any(_HEADER_START.match(line) for line in lines)


def _check_split_block(text: str, shape: HeaderShape) -> list[str | None] | None:
    """Assert that ``split_block`` agrees with the bulk pattern, and return it."""
    parts = speedups.split_block(text, shape)
    expected = bulk_pattern(shape).split("\n" + text)
    if len(expected) == 1 or None in expected[1::4]:
        assert parts is None
    elif parts is None:
        assert _starts_like_header(text.split("\n")), "gave up on plain lines"
    else:
        assert parts == expected
    return parts


def _check_count_dates(text: str, shape: HeaderShape) -> dict[str, int] | None:
    """Assert that ``count_dates`` agrees with the dates pattern, and return it."""
    counts = speedups.count_dates(text, shape)
    expected = Counter(_dates_pattern(shape).findall(text))
    if "" in expected:
        assert counts is None
    elif counts is None:
        # Only lines after an LF count, so the first line cannot make it give up.
        assert _starts_like_header(text.split("\n")[1:]), "gave up on plain lines"
    else:
        assert type(counts) is dict
        assert counts == dict(expected)
    _check_scan_utf8(text, shape, counts)
    return counts


def _check_scan_utf8(text: str, shape: HeaderShape, counts: dict[str, int] | None) -> None:
    """Assert that ``scan_utf8`` on the UTF-8 of ``text`` agrees with ``count_dates``.

    Read after an LF, the text's first line counts too, as in ``count_dates``
    of the text with an LF before it.
    """
    data = text.encode()
    found = speedups.scan_utf8(data, shape, FORMAT_MARKS, False)
    if "\r" in text or any(mark in text for mark in FORMAT_MARKS):
        assert found is None
        return

    assert found == (None if counts is None else (counts, text.count("\n")))
    after_lf = speedups.scan_utf8(data, shape, FORMAT_MARKS, True)
    expected = speedups.count_dates("\n" + text, shape)
    assert after_lf == (None if expected is None else (expected, text.count("\n")))


def _ascii_shapes() -> st.SearchStrategy[Shape]:
    """Draw header shapes in ASCII digits."""
    return _shapes().map(lambda shape: dataclasses.replace(shape, digit_zero=ord("0")))


@st.composite
def _plain_line(draw: st.DrawFn, shape: Shape, messages: list[Message]) -> str:
    """Draw a header of ``shape``, or a line not starting with "[" or a decimal digit.

    Headers have no-break spaces or an en dash in some draws, and a risky
    sender part after them.
    """
    if draw(st.booleans()):
        return draw(st.sampled_from(_PLAIN_CONTINUATIONS))

    header = render_header(draw(st.sampled_from(messages)), shape)
    variants = [
        header,
        header.replace(" ", "\u00a0"),
        header.replace(" - ", " \u2013 "),
    ]
    return draw(st.sampled_from(variants)) + draw(st.sampled_from(_RISKY_SENDERS))


#: Characters inserted into headers to make near misses, and "" to delete one.
_EDITS = ["", "", "0", "7", ".", ":", "/", "-", ",", " ", "\u00a0", "[", "]", "A", "m"]


def _perturbed(header: str, draw: st.DrawFn) -> str:
    """Insert one of ``_EDITS`` into ``header``, or delete one of its characters."""
    at = draw(st.integers(0, len(header) - 1))
    inserted = draw(st.sampled_from(_EDITS))
    return header[:at] + inserted + header[at + (not inserted) :]


@st.composite
def _header_like_line(draw: st.DrawFn, shape: Shape, messages: list[Message]) -> str:
    """Draw a line that starts like a header, of ``shape`` or not."""
    if draw(st.booleans()):
        return draw(st.sampled_from(_HEADER_LIKE_CONTINUATIONS))

    message = draw(st.sampled_from(messages))
    # The same shape with the four-digit year moved to the other end.
    flipped = dataclasses.replace(
        shape, order="dmy" if shape.order == "ymd" else "ymd", four_digit_year=True
    )
    variants = [
        # The date and the time without a space between them, so the digits
        # of the year run into the hour unless a comma separates them.
        render_header(message, shape).replace(" ", "", 1),
        render_header(message, dataclasses.replace(shape, digit_zero=0x0660)),
        render_header(message, flipped),
        render_header(message, draw(_shapes())),
        _perturbed(render_header(message, shape), draw),
    ]
    return draw(st.sampled_from(variants)) + draw(st.sampled_from(_RISKY_SENDERS))


@st.composite
def _risky_export(draw: st.DrawFn) -> tuple[str, HeaderShape, bool]:
    """Draw a rendered export with risky lines inserted.

    Returns:
      The text of the export, its header shape, and True when every line is
      a header of that shape in ASCII digits or starts with neither "[" nor a
      decimal digit.
    """
    shape = draw(_ascii_shapes().map(lambda s: dataclasses.replace(s, noise=False)))
    messages = draw(_messages(shape.seconds))
    lines = _block_text(render(messages, shape)).split("\n")
    plain = draw(st.lists(_plain_line(shape, messages), min_size=1, max_size=6))
    header_like = draw(st.lists(_header_like_line(shape, messages), max_size=2))
    for extra in plain + header_like:
        lines.insert(draw(st.integers(0, len(lines) - 1)), extra)
    return "\n".join(lines), _header_shape(shape), not header_like


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_clean_export_is_read_in_c(data: st.DataObject) -> None:
    # Given: an export whose lines are headers in ASCII digits or lines that
    # start with a letter, in any shape.
    shape = data.draw(_ascii_shapes())
    messages = data.draw(_messages(shape.seconds))
    text = _block_text(render(messages, shape))
    header_shape = _header_shape(shape)

    # When / Then: both functions agree with the regexes and do not give up.
    parts = _check_split_block(text, header_shape)
    counts = _check_count_dates(text, header_shape)
    assert parts is not None
    assert counts is not None
    assert len(parts) == 1 + 4 * len(messages)
    assert sum(counts.values()) == len(messages) - 1


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(export=_risky_export())
def test_risky_export_splits_like_regex(export: tuple[str, HeaderShape, bool]) -> None:
    # Given: an export with lines close to headers of its shape.
    text, shape, plain = export

    # When: the C functions read it.
    parts = _check_split_block(text, shape)
    counts = _check_count_dates(text, shape)

    # Then: they agree with the regexes, and read plain lines to the end.
    if plain:
        assert parts is not None
        assert counts is not None


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_risky_text_splits_like_regex(data: st.DataObject) -> None:
    # Given: lines of header characters, mixed with clean headers of a shape.
    shape = data.draw(_ascii_shapes())
    messages = data.draw(_messages(shape.seconds))
    clean = st.sampled_from(messages).map(lambda m: render_header(m, shape) + "Ana: x")
    line = st.one_of(st.text(alphabet=_RISKY_ALPHABET, max_size=40), clean)
    text = "\n".join(data.draw(st.lists(line, max_size=8)))
    header_shape = _header_shape(shape)

    # When / Then: the C result is the regex result, or None where allowed.
    _check_split_block(text, header_shape)
    _check_count_dates(text, header_shape)


@st.composite
def _near_header(draw: st.DrawFn, shape: HeaderShape) -> str:
    """Draw a header of ``shape`` with up to two of its parts replaced by near misses.

    A near miss is a digit run at or past the limits of its field, or a
    separator, space, marker or ending of another shape, or none. A number
    among the choices means a run of that many ASCII digits.
    """
    separator = shape.separator
    others = [mark for mark in "/.-" if mark != separator]
    meridiems = [
        " AM",
        "\u202fpm",
        " a. m.",
        "p.m.",
        "a.\u00a0m.",
        "\u00a0\u0635",
        " \u0645",
    ]
    near_meridiems = ["", " a", " AM.", " a.m", " A M", "  PM", " a..m.", " AMM"]
    if shape.bracketed:
        ends = (["] ", "]", "]\u00a0"], ["", " ]", "]]", ") "])
    else:
        ends = (
            [" - ", "-", " \u2013 ", "\u00a0-\u00a0", "  - "],
            ["", " ", " \u2014 "],
        )
    # The right choices of each part of the header, then its near misses.
    parts: list[tuple[list[str | int], list[str | int]]] = [
        (["["], [""]) if shape.bracketed else ([""], ["["]),
        ([4], [0, 3, 5]) if shape.year_first else ([1, 2, 3], [0, 4, 5]),
        ([separator], others),
        ([1, 2], [0, 3]),
        ([separator], others),
        ([1, 2, 4], [0, 5]),
        (["", "."], [".."]),
        ([",", "\u060c"], ["", ";"]) if shape.comma else ([""], [",", "\u060c"]),
        (["", " ", "\u00a0", "\u202f", "  "], ["\t"]),
        ([1, 2], [0, 3]),
        ([":", "."], [";", ""]),
        ([2], [1, 3]),
        ([":", "."], ["", ";"]) if shape.seconds else ([""], [":", "."]),
        ([2], [1, 3]) if shape.seconds else ([0], [2]),
        (meridiems, near_meridiems) if shape.twelve_hour else ([""], meridiems),
        ends,
    ]
    missed = draw(st.sets(st.integers(0, len(parts) - 1), max_size=2))
    header = []
    for index, (right, near) in enumerate(parts):
        part = draw(st.sampled_from(near if index in missed else right))
        if isinstance(part, int):
            part = draw(st.text("0123456789", min_size=part, max_size=part))
        header.append(part)
    return "".join(header)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_near_miss_header_splits_like_regex(data: st.DataObject) -> None:
    # Given: near misses of headers of a shape, each on a line of its own so
    # that giving up on one hides no other.
    shape = data.draw(_ascii_shapes().map(_header_shape))
    lines = data.draw(st.lists(_near_header(shape), min_size=1, max_size=8))
    for line in lines:
        line += data.draw(st.sampled_from(_RISKY_SENDERS))

        # When / Then: the C result is the regex result, or None where allowed.
        _check_split_block(line + "\n", shape)
        _check_count_dates("\n" + line + "\n", shape)


#: An Android header, in d/m/y with a comma, and an iOS header, in y-m-d
#: with seconds and AM/PM, then near misses of each with a digit run one digit
#: short of or past its limits, or a part missing. No near miss is a header of
#: its shape.
_LIMIT_HEADERS = [
    *(
        (HeaderShape(False, "/", True, False, False, False), line)
        for line in [
            "1/05/21, 10:00 - Ana: x",
            "1234/05/21, 10:00 - Ana: x",
            "1/123/21, 10:00 - Ana: x",
            "1//21, 10:00 - Ana: x",
            "1/05/20211, 10:00 - Ana: x",
            "1/05/, 10:00 - Ana: x",
            "1/05/21, 123:00 - Ana: x",
            "1/05/21, 10:0 - Ana: x",
            "1/05/21, 10:000 - Ana: x",
        ]
    ),
    *(
        (HeaderShape(True, "-", False, True, True, True), line)
        for line in [
            "[2021-05-01 10:00:00 AM] Ana: x",
            "[202-05-01 10:00:00 AM] Ana: x",
            "[20211-05-01 10:00:00 AM] Ana: x",
            "[2021-05-01 10:00:0 AM] Ana: x",
            "[2021-05-01 10:00:000 AM] Ana: x",
            "[2021-05-01 10:00 AM] Ana: x",
            "[2021-05-01 10:00:00] Ana: x",
            "[2021-05-01 10:00:00 AM Ana: x",
        ]
    ),
]


@pytest.mark.parametrize(("shape", "line"), _LIMIT_HEADERS)
def test_header_at_limits_splits_like_regex(shape: HeaderShape, line: str) -> None:
    # Given: a line at the limits of a header of ``shape``.
    text = line + "\n"

    # When / Then: the C result is the regex result, or None where allowed.
    parts = _check_split_block(text, shape)
    counts = _check_count_dates("\n" + text, shape)
    if line.startswith(("1/05/21, 10:00 ", "[2021-05-01 10:00:00 AM]")):
        assert parts is not None
        assert counts == {line.split(" ")[0].strip("[,"): 1}
    else:
        assert parts is None


#: Bytes around the edges of well-formed UTF-8: overlong forms, surrogates,
#: values past U+10FFFF, lone continuation bytes and cut sequences.
_UTF8_EDGES = [
    b"\xc0\x80", b"\xc1\xbf", b"\xc2\x80", b"\xdf\xbf", b"\xe0\x9f\xbf",
    b"\xe0\xa0\x80", b"\xed\x9f\xbf", b"\xed\xa0\x80", b"\xee\x80\x80",
    b"\xef\xbf\xbf", b"\xf0\x8f\xbf\xbf", b"\xf0\x90\x80\x80",
    b"\xf4\x8f\xbf\xbf", b"\xf4\x90\x80\x80", b"\xf5\x80\x80\x80", b"\x80",
    b"\xbf", b"\xe2\x82", b"\xf0\x9f\x98", b"\xff", b"\xd9\xa1",
    "\u200e".encode(), "\ufeff".encode(), b"\r", b"\n", b"1/2/21, 10:00 - A: x\n",
]


@settings(max_examples=500, deadline=None)
@given(
    pieces=st.lists(
        st.one_of(st.sampled_from(_UTF8_EDGES), st.binary(max_size=6)), max_size=12
    )
)
def test_scan_utf8_takes_only_what_decodes(pieces: list[bytes]) -> None:
    # Given: bytes that may or may not be well-formed UTF-8.
    data = b"".join(pieces)
    shape = HeaderShape(False, "/", True, False, False, False)

    # When: the first pass reads them undecoded.
    found = speedups.scan_utf8(data, shape, FORMAT_MARKS, True)

    # Then: it gives up on what Python's decoder rejects, and agrees with the
    # count of the decoded text on the rest.
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        assert found is None
        return
    _check_scan_utf8(text, shape, speedups.count_dates(text, shape))


def test_scan_utf8_reads_a_plain_block() -> None:
    shape = HeaderShape(False, "/", True, False, False, False)
    data = (
        "12/01/21, 08:00 - Chlo\u00e9: caf\u00e9 \U0001f600\n"
        "more: 13/01/21, 09:00\n"
        "13/01/21, 09:00 - Ana: x\n"
        "13/01/21, 09:01 - Ana: y"
    ).encode()

    assert speedups.scan_utf8(data, shape, FORMAT_MARKS, False) == ({"13/01/21": 2}, 3)
    assert speedups.scan_utf8(data, shape, FORMAT_MARKS, True) == (
        {"12/01/21": 1, "13/01/21": 2},
        3,
    )
    # Non-ASCII spaces are read from their bytes; a header in other digits
    # makes it give up, as count_dates does.
    spaced = "12/01/21,\u00a008:00\u202f-\u00a0A: x\n".encode()
    assert speedups.scan_utf8(spaced, shape, FORMAT_MARKS, True) == ({"12/01/21": 1}, 1)
    arabic = "\u0661\u0662/01/21, 08:00 - A: x\n".encode()
    assert speedups.scan_utf8(arabic, shape, FORMAT_MARKS, True) is None


def test_split_block_without_header_gives_none() -> None:
    shape = HeaderShape(False, "/", True, False, False, False)

    assert speedups.split_block("", shape) is None
    assert speedups.split_block("plain text\nand more\n", shape) is None
    assert speedups.count_dates("plain text\nand more\n", shape) == {}


@settings(max_examples=300, deadline=None)
@given(
    text=st.text(
        alphabet=st.sampled_from(
            list("ab \n\u00e9\u0100\u2000\U0001f600") + list(FORMAT_MARKS)
        ),
        max_size=60,
    )
)
def test_has_any_matches_in(text: str) -> None:
    # Given: text of one, two or four bytes a character, with or without marks.
    expected = any(mark in text for mark in FORMAT_MARKS)

    # When / Then: the C scan gives the result of the substring tests.
    assert speedups.has_any(text, FORMAT_MARKS) is expected


#: Characters of times in every header shape, and a few that no time has.
_CLOCK_ALPHABET = "0123459:. aApPmM\u202f\u0660"


@settings(max_examples=500, deadline=None)
@given(text=st.text(alphabet=st.sampled_from(list(_CLOCK_ALPHABET)), max_size=12))
def test_plain_clock_matches_regex_reading(text: str) -> None:
    # Given: a time as a header of some shape may write it, or not a time.
    clock = speedups.plain_clock(text)
    match = CLOCK.fullmatch(text)

    # When / Then: where the C reading returns a time, the regex reads the
    # text as the same time.
    if clock is not None:
        assert match is not None
        time, anomaly = time_from_match(match)
        assert time is not None
        since_midnight = datetime.timedelta(
            hours=time.hour, minutes=time.minute, seconds=time.second
        )
        assert clock == (since_midnight, time.isoformat(), anomaly)


@pytest.mark.parametrize("text", ["9:05", "09:05", "23:59:59", "7.30", "7.30.15"])
def test_plain_clock_reads_plain_times(text: str) -> None:
    # Given / When / Then: plain 24-hour times in ASCII digits are read in C.
    assert speedups.plain_clock(text) is not None


@pytest.mark.parametrize("portable", [False, True])
def test_sha256_hex_matches_hashlib(portable: bool) -> None:
    # Given: every length up to four blocks and a half, then a few large ones.
    lengths = [*range(301), 4095, 4096, 65_537, 1_000_003]
    for length in lengths:
        data = bytes((index * 131 + length) % 256 for index in range(length))

        # When / Then: the digest is hashlib's.
        expected = hashlib.sha256(data).hexdigest()
        assert speedups.sha256_hex(data, portable=portable) == expected, length


def test_sha256_hex_takes_bytes_like_objects() -> None:
    data = "Zé 😀\x1f0".encode()
    expected = hashlib.sha256(data).hexdigest()

    assert speedups.sha256_hex(bytearray(data)) == expected
    assert speedups.sha256_hex(memoryview(data)) == expected
    assert speedups.SHA_EXTENSIONS in (0, 1)


@pytest.mark.parametrize("value", ["text", 12, None, [1, 2]])
def test_sha256_hex_rejects_non_bytes(value: object) -> None:
    with pytest.raises(TypeError):
        speedups.sha256_hex(value)


def test_sha256_hex_portable_is_keyword_only() -> None:
    with pytest.raises(TypeError):
        speedups.sha256_hex(b"x", True)


Outcome = tuple[list[ParsedMessage], list[type], dict[str, object], list[str]] | str


def _parse(export: Path | bytes, *, use_c: bool, order: str = "dmy") -> Outcome:
    """Parse an export with or without the C functions.

    Returns:
      The messages, their types, the report as a dictionary and the
      participants, or the name and text of the error the parse raised.
    """
    with pytest.MonkeyPatch.context() as patch:
        if use_c:
            assert bulk.SPEEDUPS is speedups
        else:
            patch.setattr(bulk, "SPEEDUPS", None)
        stream = io.BytesIO(export) if isinstance(export, bytes) else export
        try:
            chat = parse_export(stream, fallback_date_order=order, default_region="GB")
            with chat:
                messages = list(chat.messages())
                report = dataclasses.asdict(chat.report)
                return messages, [type(m) for m in messages], report, chat.participants
        except WhatsAppError as error:
            return f"{type(error).__name__}: {error}"


def _assert_same_parse(export: Path | bytes, order: str = "dmy") -> None:
    fast = _parse(export, use_c=True, order=order)
    python = _parse(export, use_c=False, order=order)

    if isinstance(python, str) or isinstance(fast, str):
        assert fast == python
        return

    assert fast[0] == python[0]
    assert fast[1] == python[1]
    assert fast[2] == python[2]
    assert fast[3] == python[3]


def _scan(data: bytes, *, use_c: bool) -> Scan | str:
    """Run the first pass over an export with or without the C functions."""
    with pytest.MonkeyPatch.context() as patch:
        if not use_c:
            patch.setattr(bulk, "SPEEDUPS", None)
        encoding = source.detect_encoding(data[: source.SNIFF_SIZE])
        try:
            return scan_export(lambda: io.BytesIO(data), encoding, "chat.txt")
        except WhatsAppError as error:
            return f"{type(error).__name__}: {error}"


def _assert_same_scan(data: bytes) -> None:
    """Assert that the first pass learns the same with and without the C functions."""
    assert _scan(data, use_c=True) == _scan(data, use_c=False)


def _write(tmp_path: Path, export: str, ending: str = "\n") -> Path:
    path = tmp_path / "chat.txt"
    path.write_text(export.replace("\n", ending) + ending, "utf-8", newline="")
    return path


@pytest.mark.parametrize(
    "export",
    [MIXED_EXPORT, ONE_SHAPE_EXPORT, NOTICES_EXPORT],
    ids=["mixed", "one-shape", "notices"],
)
@pytest.mark.parametrize("block_size", BLOCK_SIZES)
@pytest.mark.parametrize("ending", ["\n", "\r\n"], ids=["lf", "crlf"])
def test_fixed_export_parses_alike(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    export: str,
    block_size: int,
    ending: str,
) -> None:
    # Given: an export with every case that leaves the plain path, read in
    # blocks of several sizes.
    path = _write(tmp_path, export, ending)
    monkeypatch.setattr(source, "BLOCK_SIZE", block_size)

    # When / Then: the C and the Python paths give the same parse.
    _assert_same_parse(path)


def test_notices_export_reaches_every_case(tmp_path: Path) -> None:
    # Given: the export of notices, read with the C functions.
    messages, _, report, _ = _parse(_write(tmp_path, NOTICES_EXPORT), use_c=True)

    # Then: it has the cases it was written for. The hour 25 is invalid, so
    # its header does not parse and is no clock anomaly.
    assert report["clock_anomalies"] == 2
    assert report["unparsed_lines"] == 3
    assert report["media"] == 4
    assert report["system_messages"] == 12
    assert any(message.is_deleted for message in messages)
    assert any(message.is_edited for message in messages)
    assert any(message.is_location for message in messages)
    assert all(
        message.sender is None for message in messages if message.kind == "system"
    )


def _same_message(minute: int) -> str:
    """Write the same message at ``minute`` minutes past 1 January 2021."""
    day, minute = divmod(minute, 1440)
    return f"{1 + day:02d}/01/2021, {minute // 60:02d}:{minute % 60:02d} - Ana: same"


def _repeated_export(window: int) -> str:
    """Write identical messages that come back after ``window`` other timestamps."""
    window_end = window + 50
    minutes = [*range(window_end), *range(10), *range(window_end - 10, window_end)]
    return "\n".join(_same_message(minute) for minute in minutes)


def _returning_export(window: int) -> tuple[str, list[int]]:
    """Write a message that comes back after ``window`` - 1, ``window`` and
    ``window`` + 1 other timestamps.

    Returns:
      The export, and the indexes of the messages that come back.
    """
    minutes: list[int] = []
    returns = []
    start = 0
    for gap in (window - 1, window, window + 1):
        minutes += [start, *range(start + 1, start + 1 + gap)]
        returns.append(len(minutes))
        minutes.append(start)
        start += gap + 1
    return "\n".join(_same_message(minute) for minute in minutes), returns


@pytest.mark.parametrize("block_size", [1 << 20, 4096])
def test_repeated_messages_past_window_parse_alike(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block_size: int
) -> None:
    # Given: identical messages spread over more timestamps than the window.
    path = _write(tmp_path, _repeated_export(bulk.OCCURRENCE_WINDOW))
    monkeypatch.setattr(source, "BLOCK_SIZE", block_size)

    # When / Then: both paths give the same keys and counts.
    _assert_same_parse(path)


@pytest.mark.parametrize("window", [1, 2, 5, bulk.OCCURRENCE_WINDOW])
def test_message_back_at_window_edge(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, window: int
) -> None:
    # Given: a message that comes back just inside, at and past the window.
    monkeypatch.setattr(bulk, "OCCURRENCE_WINDOW", window)
    export, returns = _returning_export(window)
    path = _write(tmp_path, export)

    # When: it is read with the C functions.
    messages = _parse(path, use_c=True)[0]

    # Then: only the message back within the window gets a key of its own,
    # and the Python path gives the same keys.
    inside, edge, outside = (messages[index] for index in returns)
    assert inside.key != messages[returns[0] - window].key
    assert edge.key == messages[returns[1] - window - 1].key
    assert outside.key == messages[returns[2] - window - 2].key
    _assert_same_parse(path)


@pytest.mark.parametrize("window", [1, 2, 5])
def test_small_occurrence_window_parses_alike(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, window: int
) -> None:
    # Given: a window of a few timestamps, so entries leave and are purged
    # within the C loop, and exports with identical messages.
    monkeypatch.setattr(bulk, "OCCURRENCE_WINDOW", window)
    repeated = _repeated_export(window) + "\n" + _repeated_export(window)

    # When / Then: both paths give the same keys and counts.
    for export in (repeated, NOTICES_EXPORT, MIXED_EXPORT):
        _assert_same_parse(_write(tmp_path, export), order="mdy")


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_generated_export_parses_alike(data: st.DataObject) -> None:
    # Given: an export in any shape, digits, marks and line endings, read in
    # blocks of any size.
    shape = data.draw(_shapes())
    messages = data.draw(_messages(shape.seconds))
    block_size = data.draw(st.sampled_from(BLOCK_SIZES))

    # When / Then: both paths give the same parse.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(source, "BLOCK_SIZE", block_size)
        _assert_same_parse(render(messages, shape), order=shape.order)
        _assert_same_scan(render(messages, shape))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(export=_risky_export(), block_size=st.sampled_from(BLOCK_SIZES))
def test_risky_export_parses_alike(
    export: tuple[str, HeaderShape, bool], block_size: int
) -> None:
    # Given: a generated export with lines close to headers.
    text, _, _ = export

    # When / Then: both paths give the same parse.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(source, "BLOCK_SIZE", block_size)
        _assert_same_parse(text.encode())
        _assert_same_scan(text.encode())


#: Exports whose later headers have the seconds shape only when the regex
#: gives the last digit of the year back to the hour, because a "." separates
#: hour and minute and no space separates date and time. split_block and
#: count_dates give up on them, and the regexes, which backtrack, then read
#: them as the Python path does.
_BACKTRACKING_EXPORTS = [
    pytest.param("1/3/21 4.35:15 - A: x\n2/3/214.35:15 - A: y\n", id="dropped-line"),
    pytest.param(
        "[1/3/21 4.35:15 PM] A: x\n"
        "[1/3/5644.35:15 PM] A: y\n"
        "[1/3/5644.35:15 PM] A: z\n",
        id="other-shape",
    ),
]


@pytest.mark.parametrize("export", _BACKTRACKING_EXPORTS)
def test_backtracking_header_parses_alike(export: str) -> None:
    _assert_same_parse(export.encode())


def test_corpus_parses_alike(
    whatsapp_corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given: every real export of the corpus, in large and small blocks.
    paths = sorted(path for path in whatsapp_corpus.iterdir() if path.is_file())
    assert paths
    for block_size in (1 << 20, 256):
        monkeypatch.setattr(source, "BLOCK_SIZE", block_size)
        for path in paths:
            for order in ("dmy", "mdy"):
                # When / Then: both paths give the same parse.
                fast = _parse(path, use_c=True, order=order)
                python = _parse(path, use_c=False, order=order)
                assert fast == python, f"{path.name}, {order}, blocks of {block_size}"
            _assert_same_scan(path.read_bytes())


def _media_export(count: int) -> str:
    """Return an Android export whose every third message has a marker.

    The markers take turns: an image, a voice note, an omitted file, a
    document, a deletion and an edit. So 300 messages hold 17 of each of the
    first four and 16 of each of the last two.
    """
    bodies = [
        "IMG-20240113-WA{n:04d}.jpg (file attached)",
        "PTT-20240113-WA{n:04d}.opus (file attached)\nlisten to this",
        "<Media omitted>",
        "DOC-20240113-WA{n:04d}.pdf (file attached)",
        "This message was deleted",
        "quote for {n} units <This message was edited>",
    ]
    lines = []
    for n in range(count):
        marked = bodies[n // 3 % len(bodies)].format(n=n)
        body = marked if n % 3 == 0 else f"plain text {n}"
        lines.append(f"13/01/2024, {9 + n // 60:02d}:{n % 60:02d} - Ana Costa: {body}")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("block_size", [1 << 20, 512])
def test_zip_media_parses_alike(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block_size: int
) -> None:
    # Given: a zip export with media placeholders, with the files of the
    # images and of every other voice note.
    monkeypatch.setattr(source, "BLOCK_SIZE", block_size)
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as members:
        members.writestr("WhatsApp Chat with Ana Costa.txt", _media_export(300))
        for n in range(0, 300, 18):
            members.writestr(f"IMG-20240113-WA{n:04d}.jpg", b"\xff\xd8jpeg")
        for n in range(3, 300, 36):
            members.writestr(f"PTT-20240113-WA{n:04d}.opus", b"OggS")

    # When / Then: both paths give the same parse, with linked files.
    _assert_same_parse(archive.getvalue())
    outcome = _parse(archive.getvalue(), use_c=True)
    assert not isinstance(outcome, str)
    messages, _, report, _ = outcome
    attachments = [a for message in messages for a in message.attachments]
    assert report["media"] == len(attachments) == 4 * 17
    assert sum(a.member is not None for a in attachments) == 17 + 9
    assert sum(a.needs_transcription for a in attachments) == 17
    assert sum(m.is_deleted for m in messages) == sum(m.is_edited for m in messages) == 16


class _CountingSpeedups:
    """The C module, with a count of the calls of each function."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.messages = 0
        self.sha256_hex = speedups.sha256_hex
        self.Occurrences = speedups.Occurrences
        self.has_any = speedups.has_any
        self.plain_clock = speedups.plain_clock

    def split_block(self, text: str, shape: HeaderShape) -> list[str | None] | None:
        self.calls["split_block"] += 1
        return speedups.split_block(text, shape)

    def count_dates(self, text: str, shape: HeaderShape) -> dict[str, int] | None:
        self.calls["count_dates"] += 1
        return speedups.count_dates(text, shape)

    def bulk_messages(self, *args: object) -> tuple[object, ...]:
        self.calls["bulk_messages"] += 1
        result = speedups.bulk_messages(*args)
        self.messages += len(result[0])
        return result


def test_plain_export_takes_c_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given: a plain export in one block, and the C module behind a counter.
    assert bulk.SPEEDUPS is speedups
    counting = _CountingSpeedups()
    monkeypatch.setattr(bulk, "SPEEDUPS", counting)
    lines = [
        f"13/01/2021, 08:{minute:02d} - Ana: message {minute}" for minute in range(40)
    ]
    path = _write(tmp_path, "\n".join(lines))

    # When: it is parsed.
    with parse_export(path) as chat:
        messages = list(chat.messages())

    # Then: every C function ran, and the C loop built all but the last
    # message, which stays pending for the next block.
    assert len(messages) == 40
    assert counting.calls["count_dates"] >= 1
    assert counting.calls["split_block"] == 1
    assert counting.calls["bulk_messages"] == 1
    assert counting.messages == 39


def test_setting_turns_c_path_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given: an operator who switched the C parser off.
    path = _write(tmp_path, MIXED_EXPORT)
    with_c = _parse(path, use_c=True)
    counting = _CountingSpeedups()
    monkeypatch.setattr(bulk, "SPEEDUPS", counting)
    monkeypatch.setenv("WALLIE_WHATSAPP_C_PARSER", "false")
    reset_settings()

    try:
        # When: an export is parsed.
        with parse_export(path, fallback_date_order="dmy", default_region="GB") as chat:
            messages = list(chat.messages())
    finally:
        monkeypatch.delenv("WALLIE_WHATSAPP_C_PARSER")
        reset_settings()

    # Then: no C function ran, and the messages are the same.
    assert not counting.calls
    assert isinstance(with_c, tuple)
    assert messages == with_c[0]


def test_invalid_c_parser_setting_names_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given: a value that is not a boolean.
    monkeypatch.setenv("WALLIE_WHATSAPP_C_PARSER", "fast")

    # When / Then: reading the settings fails and names the variable.
    with pytest.raises(ConfigurationError, match="WALLIE_WHATSAPP_C_PARSER='fast'"):
        load_settings()


@pytest.mark.parametrize("size", [1, 2, 3, 4, 64])
@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xef\xbb\xbf",
        b"\xef\xbb\xbfa\nb",
        b"a\r\nb\r",
        b"ab",
        "\ufeffx\n\ufeffy\r\n".encode(),
    ],
)
def test_utf8_blocks_decode_like_the_codec(data: bytes, size: int) -> None:
    # Given: a UTF-8 file, with or without a byte-order mark, read in blocks
    # of a few bytes.
    def opener() -> io.BytesIO:
        return io.BytesIO(data)

    # When: its blocks are read undecoded, then decoded one by one.
    blocks = list(source.read_utf8_blocks(opener, size))
    text = "".join(source.decode_utf8_block(block, opener, "chat.txt") for block in blocks)

    # Then: the text is what the utf-8-sig codec gives, and every block but
    # the last ends with a line ending.
    assert text == data.decode("utf-8-sig")
    assert all(block.endswith((b"\n", b"\r")) for block in blocks[:-1])


#: UTF-8 exports split at a byte that does not decode, into the bytes before
#: it and the bytes from it on. The byte comes after a byte-order mark, on a
#: later line or at the end of the file, or the file is the start of a mark.
_BAD_UTF8 = [
    pytest.param(b"\xef\xbb\xbf12/01/21, 08:00 - Ana: caf", b"\xe9\n", id="after-bom"),
    pytest.param(
        b"\xef\xbb\xbf12/01/21, 08:00 - Ana: x\n12/01/21, 08:01 - Ana: caf",
        b"\xc0\x80\n",
        id="later-line-after-bom",
    ),
    pytest.param(b"12/01/21, 08:00 - Ana: x\n", b"\xed\xa0\x80: y\n", id="no-bom"),
    pytest.param(
        b"\xef\xbb\xbf12/01/21, 08:00 - Ana: x\n", b"\xe2\x82", id="cut-at-end"
    ),
    pytest.param(b"", b"\xef\xbb", id="start-of-bom"),
    pytest.param(b"\xef\xbb\xbf", b"\xef\xbb", id="bom-and-start-of-bom"),
]


@pytest.mark.parametrize("block_size", [1 << 20, 7, 1])
@pytest.mark.parametrize(("before", "bad"), _BAD_UTF8)
def test_invalid_utf8_names_file_offset(
    monkeypatch: pytest.MonkeyPatch, before: bytes, bad: bytes, block_size: int
) -> None:
    # Given: a UTF-8 export with an invalid byte, read in blocks of some size.
    monkeypatch.setattr(source, "BLOCK_SIZE", block_size)
    data = before + bad

    # When: it is parsed with and without the C functions.
    fast = _parse(data, use_c=True)
    python = _parse(data, use_c=False)

    # Then: both raise the same error, which counts the offset of the invalid
    # byte from the start of the file, byte-order mark included.
    assert fast == python
    assert isinstance(python, str)
    assert python.startswith("ExportEncodingError: ")
    assert f"at byte offset {len(before)}." in python


#: Long lines that the marker patterns once read in time quadratic or cubic
#: in their length. They are an attachment name between runs of spaces, a
#: run of spaces before a final ">", and a line without a sender that repeats
#: the first word of a two-word notice phrase.
_LONG_LINES = [
    pytest.param(
        "Ana: <attached:" + " " * 20_000 + "x.jpg" + " " * 20_000 + ")",
        id="attached-in-spaces",
    ),
    pytest.param("Ana: a" + " " * 1_000_000 + ">", id="spaces-before-bracket"),
    pytest.param("gruppe " * 100_000, id="notice-word-repeated"),
]


@pytest.mark.parametrize("body", _LONG_LINES)
def test_long_line_parses_alike(body: str) -> None:
    # Given: an export with one long line between two ordinary messages.
    export = (
        "12/01/21, 08:00 - Ana: first\n"
        f"12/01/21, 08:01 - {body}\n"
        "12/01/21, 08:02 - Ben: last\n"
    ).encode()

    # When: it is parsed with and without the C functions.
    fast = _parse(export, use_c=True)
    python = _parse(export, use_c=False)

    # Then: both finish with the same three messages, and the long line is
    # read as plain text or a notice of no known kind.
    assert fast == python
    assert not isinstance(python, str)
    messages = python[0]
    assert [message.line_number for message in messages] == [1, 2, 3]
    assert messages[1].attachments == ()
    assert not messages[1].is_edited
    assert messages[1].system_event in (None, "other")
