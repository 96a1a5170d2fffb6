"""Message header lines: matching, shape, date order and timestamps."""

from __future__ import annotations

import datetime
import re
from typing import NamedTuple

#: Invisible format characters that WhatsApp and phones insert around headers,
#: names and numbers: BOM, LRM/RLM, bidi embeddings and isolates. ZWJ (U+200D)
#: is not among them, so emoji sequences survive.
FORMAT_MARKS = "\ufeff\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"

#: Any of ``FORMAT_MARKS``. A regex removes them faster than ``str.translate``.
_MARKS = re.compile(f"[{FORMAT_MARKS}]")

_SPACE = "[ \u00a0\u202f]"

#: A message header at the start of a line, after format marks were removed.
#: Android writes ``d/m/yy, HH:mm - `` and iOS ``[d/m/yy, HH:mm:ss] ``. ``\d`` matches
#: any Unicode decimal digit, and ``int()`` reads Arabic-Indic, Persian and
#: Devanagari digits as ASCII ones.
HEADER = re.compile(
    r"(?P<open>\[)?"
    r"(?P<d1>\d{1,4})(?P<sep>[/.\-])(?P<d2>\d{1,2})(?P=sep)(?P<d3>\d{1,4})\.?"
    rf"(?P<comma>[,\u060c])?{_SPACE}*"
    r"(?P<hour>\d{1,2})[:.](?P<minute>\d{2})(?:[:.](?P<second>\d{2}))?"
    rf"(?:{_SPACE}*(?P<ampm>[AaPp]\.?{_SPACE}?[Mm]\.?|\u0635|\u0645))?"
    rf"(?(open)\]{_SPACE}?|{_SPACE}*[-\u2013]{_SPACE}?)"
)

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
