"""Message header lines: matching, shape, date order and timestamps."""

from __future__ import annotations

import datetime
import functools
import re
from collections.abc import Iterator
from typing import NamedTuple

#: Invisible format characters that WhatsApp and phones insert around headers,
#: names and numbers: BOM, LRM/RLM, bidi embeddings and isolates. ZWJ (U+200D)
#: is not among them, so emoji sequences survive.
FORMAT_MARKS = "\ufeff\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"

#: Any of ``FORMAT_MARKS``. A regex removes them faster than ``str.translate``.
_MARKS = re.compile(f"[{FORMAT_MARKS}]")

_SPACE = "[ \u00a0\u202f]"

#: Parts of a message header, in order. Android writes ``d/m/yy, HH:mm - ``
#: and iOS ``[d/m/yy, HH:mm:ss] ``. ``\d`` matches any Unicode decimal digit,
#: and ``int()`` reads Arabic-Indic, Persian and Devanagari digits as ASCII ones.
_OPEN = r"(?P<open>\[)?"
_DATE = r"(?P<d1>\d{1,4})(?P<sep>[/.\-])(?P<d2>\d{1,2})(?P=sep)(?P<d3>\d{1,4})\.?"
_COMMA = r"(?P<comma>[,\u060c])?"
_CLOCK = r"(?P<hour>\d{1,2})[:.](?P<minute>\d{2})"
_SECONDS = r"(?:[:.](?P<second>\d{2}))?"
_MERIDIEM = r"[AaPp]\.?{space}?[Mm]\.?|\u0635|\u0645".format(space=_SPACE)
_AMPM = rf"(?:{_SPACE}*(?P<ampm>{_MERIDIEM}))?"
_BRACKET_END = rf"\]{_SPACE}?"
_DASH_END = rf"{_SPACE}*[-\u2013]{_SPACE}?"

#: A message header at the start of a line, after format marks were removed.
HEADER = re.compile(
    _OPEN + _DATE + _COMMA + f"{_SPACE}*" + _CLOCK + _SECONDS + _AMPM
    + f"(?(open){_BRACKET_END}|{_DASH_END})"
)


def _scan_pattern(eol: str, first: int) -> re.Pattern[str]:
    """Compile ``HEADER`` after the line ending ``eol``, for the first pass.

    Parameters:
      eol: Pattern of the line ending before the header.
      first: Number of the bracket group, 2 when ``eol`` captures, else 1.

    Returns:
      A pattern capturing only what the first pass needs: the bracket, the
      first two date fields, the separator, the comma, the seconds separator
      and the AM/PM marker. The other groups of ``HEADER`` are non-capturing
      here, which does not change what matches, and ``findall`` then gives few
      distinct tuples to count.
    """
    separator = first + 2
    return re.compile(
        eol
        + r"(\[)?(\d{1,4})([/.\-])(\d{1,2})"
        + f"\\{separator}"
        + r"\d{1,4}\.?([,\u060c])?"
        + f"{_SPACE}*"
        + r"\d{1,2}[:.]\d{2}(?:([:.])\d{2})?"
        + f"(?:{_SPACE}*({_MERIDIEM}))?"
        + f"(?({first}){_BRACKET_END}|{_DASH_END})"
    )


#: Any header, without groups: ``HEADER`` without the checks that the two
#: date separators are the same and that only a bracketed header ends with a
#: bracket. Every line that ``HEADER`` matches also matches this pattern.
ANY_HEADER = (
    r"\[?\d{1,4}[/.\-]\d{1,2}[/.\-]\d{1,4}\.?[,\u060c]?"
    + f"{_SPACE}*"
    + r"\d{1,2}[:.]\d{2}(?:[:.]\d{2})?"
    + f"(?:{_SPACE}*(?:{_MERIDIEM}))?(?:{_BRACKET_END}|{_DASH_END})"
)

#: The time of a header, as group 2 of :func:`exact_header` captures it, with
#: the groups that :func:`time_from_match` reads.
CLOCK = re.compile(_CLOCK + _SECONDS + _AMPM)

#: Headers after any line ending, which group 1 captures.
SCAN_HEADER = _scan_pattern(r"(\r\n|[\r\n])", 2)

#: Headers after an LF, for blocks without CR. The literal LF that starts the
#: pattern lets the regex engine skip quickly from line to line.
SCAN_HEADER_LF = _scan_pattern(r"\n", 1)

#: Line endings followed by a format mark, which removing the marks of a whole
#: block at once would merge into a CRLF.
_CR_MARK = re.compile(f"\r[{FORMAT_MARKS}]")

#: One line with its line ending: CRLF, CR or LF, or none at the end.
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+")

_MERIDIEM_PM = frozenset(("pm", "\u0645"))


class HeaderShape(NamedTuple):
    """The layout of a header line, which is the same on every line of an export.

    A named tuple rather than a dataclass, because one is built per line and
    tuples are the cheapest to build and compare.

    Attributes:
      bracketed: iOS ``[…]`` headers rather than Android ``… - `` ones.
      separator: Date separator, ``/``, ``.`` or ``-``.
      comma: A comma follows the date.
      seconds: The time has seconds.
      twelve_hour: The time has an AM/PM marker.
      year_first: The date starts with a four-digit year.
    """

    bracketed: bool
    separator: str
    comma: bool
    seconds: bool
    twelve_hour: bool
    year_first: bool

    def describe(self, order: str = "dmy") -> str:
        """Render the shape as a pattern such as ``[d/m/y, H:M:S AM]``.

        Parameters:
          order: Date order used for the field letters.
        """
        date = self.separator.join("ymd" if self.year_first else order)
        time = "H:M:S" if self.seconds else "H:M"
        if self.twelve_hour:
            time += " AM"
        text = f"{date}{',' if self.comma else ''} {time}"
        return f"[{text}]" if self.bracketed else f"{text} -"


def strip_marks(line: str) -> str:
    """Remove ``FORMAT_MARKS`` from a line, returning lines without any unchanged."""
    if line.isascii() or _MARKS.search(line) is None:
        return line

    return _MARKS.sub("", line)


def strip_block_marks(block: str) -> str | None:
    """Remove ``FORMAT_MARKS`` from a block of whole lines.

    Returns:
      The block without marks, the same block when it has none, or None when a
      mark follows a CR. Removing that mark could merge a CR line ending and
      the LF of a next, blank, line into one CRLF, so such a block must be read
      line by line.
    """
    # Twelve substring tests cost a third of one search for the class of
    # marks, because each runs a plain C loop over the block.
    if block.isascii() or not any(mark in block for mark in FORMAT_MARKS):
        return block

    if "\r" in block and _CR_MARK.search(block):
        return None

    return _MARKS.sub("", block)


def split_lines(block: str) -> list[str]:
    """Split a block into lines with their endings, as text files split them."""
    return _LINE.findall(block)


def iter_lines(block: str) -> Iterator[str]:
    """Yield the lines of a block with their endings, as text files split them."""
    for match in _LINE.finditer(block):
        yield match.group()


def exact_header(
    shape: HeaderShape, *, capture_time: bool = True, digit: str = r"\d"
) -> str:
    """Build the regex source of a header of ``shape``, without line anchor.

    Group 1 captures the date, without the dot some locales put after it,
    and group 2 the time, with seconds and AM/PM marker, unless
    ``capture_time`` is False. The match ends where a ``HEADER`` match of
    the same line ends.
    ``digit`` is the class of the digits: ``"[0-9]"`` matches fewer headers
    than the default, but several times faster in text with characters
    beyond U+00FF, where ``\\d`` looks up every character's category.

    Note:
      The optional parts of ``HEADER`` exclude each other (a comma, seconds or
      an AM/PM marker is either there or the next character cannot start what
      follows), so fixing them to the values of ``shape`` matches exactly the
      lines whose ``HEADER`` match has that shape.
    """
    separator = re.escape(shape.separator)
    first = f"{digit}{{4}}" if shape.year_first else f"{digit}{{1,3}}"
    date = f"({first}{separator}{digit}{{1,2}}{separator}{digit}{{1,4}})\\.?"
    clock = (
        f"{digit}{{1,2}}[:.]{digit}{{2}}"
        + (f"[:.]{digit}{{2}}" if shape.seconds else "")
        + (f"{_SPACE}*(?:{_MERIDIEM})" if shape.twelve_hour else "")
    )
    clock = f"({clock})" if capture_time else f"(?:{clock})"
    stamp = date + ("[,\u060c]" if shape.comma else "") + f"{_SPACE}*{clock}"
    return f"\\[{stamp}{_BRACKET_END}" if shape.bracketed else f"{stamp}{_DASH_END}"


@functools.lru_cache(maxsize=16)
def shape_pattern(shape: HeaderShape) -> re.Pattern[str]:
    """Compile a pattern that finds header candidates in a block of lines.

    Parameters:
      shape: The dominant header shape of the export.

    Returns:
      A multiline pattern matching at line starts. For a header of ``shape``,
      group 1 captures the date and group 2 the time, as in
      :func:`exact_header`.
      When group 1 did not take part, the line only starts like a header of
      any shape and must be checked with ``HEADER``.
    """
    return re.compile(f"^(?:{exact_header(shape)}|\\[?\\d{{1,4}}[/.\\-])", re.MULTILINE)


def shape_of(match: re.Match[str]) -> tuple[bool, str, bool, bool, bool, bool]:
    """Return the shape of a matched header as a plain tuple.

    The tuple compares and hashes equal to the :class:`HeaderShape` with the
    same fields, and a plain tuple is faster to build on every line.
    """
    bracket, separator, comma, second, ampm, first = match.group(
        "open", "sep", "comma", "second", "ampm", "d1"
    )
    return (
        bracket is not None,
        separator,
        comma is not None,
        second is not None,
        ampm is not None,
        len(first) == 4,
    )


def date_from_fields(d1: str, d2: str, d3: str, order: str) -> datetime.date | None:
    """Build a date from the three header fields in ``order``.

    Returns:
      The date, or None when the fields do not form a valid date in that order.

    Note:
      Two-digit years are read as 20yy, because WhatsApp launched in 2009.
    """
    if order == "ymd":
        year, month, day = int(d1), int(d2), int(d3)
    elif order == "mdy":
        month, day, year = int(d1), int(d2), int(d3)
    else:
        day, month, year = int(d1), int(d2), int(d3)

    if year < 100:
        year += 2000

    try:
        return datetime.date(year, month, day)
    except ValueError:
        return None


def time_from_match(match: re.Match[str]) -> tuple[datetime.time | None, bool]:
    """Build the time of a matched header.

    Returns:
      The time, or None when it is invalid, and whether the clock is anomalous:
      an AM/PM marker with hour 0 or above 12, which some exports write and
      which is read as a 24-hour time.
    """
    hour = int(match["hour"])
    minute = int(match["minute"])
    second = int(match["second"]) if match["second"] else 0
    anomaly = False
    marker = match["ampm"]
    if marker is not None:
        meridiem = "".join(char for char in marker.lower() if char.isalpha())
        if hour == 0 or hour > 12:
            anomaly = True
        elif meridiem in _MERIDIEM_PM:
            hour = 12 if hour == 12 else hour + 12
        elif hour == 12:
            hour = 0

    if hour > 23 or minute > 59 or second > 59:
        return None, anomaly

    return datetime.time(hour, minute, second), anomaly
