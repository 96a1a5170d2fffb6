"""First pass over an export: header shapes, date evidence and line endings."""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from wallie.whatsapp import bulk
from wallie.whatsapp.header import (
    ANY_HEADER,
    FORMAT_MARKS,
    HEADER,
    SCAN_HEADER,
    SCAN_HEADER_LF,
    HeaderShape,
    exact_header,
    iter_lines,
    shape_of,
    split_lines,
    strip_block_marks,
    strip_marks,
)
from wallie.whatsapp.source import (
    Opener,
    decode_utf8_block,
    read_blocks,
    read_utf8_blocks,
)

#: Share of headers that must follow a CRLF line ending before a header after
#: a bare LF is read as part of the message above it.
CRLF_SHARE = 0.9


@dataclass(slots=True)
class ShapeStats:
    """Evidence gathered for one header shape.

    Attributes:
      count: Headers of this shape.
      first_over_12: Headers whose first date field is above 12, so a day.
      second_over_12: Headers whose second date field is above 12, so a day.
    """

    count: int = 0
    first_over_12: int = 0
    second_over_12: int = 0


@dataclass(slots=True)
class Scan:
    """What the first pass learnt about an export.

    Attributes:
      lines: Lines in the file.
      first_text: Number and text of the first non-blank line, if any.
      shapes: Evidence per header shape.
      headers_after_crlf: Headers that follow a line ended by CRLF.
      headers_after_lf: Headers that follow a line ended by a bare LF.
      unmarked_blocks: For each block of :func:`read_blocks`, True when it
        has no format mark, so the second pass need not look for any.
    """

    lines: int = 0
    first_text: tuple[int, str] | None = None
    shapes: dict[tuple[bool, str, bool, bool, bool, bool], ShapeStats] = field(
        default_factory=dict
    )
    headers_after_crlf: int = 0
    headers_after_lf: int = 0
    unmarked_blocks: list[bool] = field(default_factory=list)

    @property
    def dominant_shape(self) -> HeaderShape | None:
        """The most frequent header shape, the first seen winning a tie."""
        if not self.shapes:
            return None

        dominant = max(self.shapes, key=lambda shape: self.shapes[shape].count)
        return HeaderShape._make(dominant)

    @property
    def crlf_terminated(self) -> bool:
        """True when messages end with CRLF and bare LFs break lines inside them.

        iOS exports written on some systems end each message with CRLF and keep
        LF inside messages, so a pasted header after a bare LF is message text.
        """
        total = self.headers_after_crlf + self.headers_after_lf
        return total > 0 and self.headers_after_crlf >= CRLF_SHARE * total


def scan_export(opener: Opener, encoding: str, source: str) -> Scan:
    """Read the export once, matching only header starts.

    Parameters:
      opener: Opens the export as a binary stream.
      encoding: Codec of the export.
      source: Name of the export, for error messages.

    Returns:
      Header shapes with date evidence, and line-ending statistics.

    Raises:
      ExportEncodingError: When the bytes do not decode.

    Note:
      The text is read in blocks of whole lines. One ``findall`` per block
      lists the headers that follow a line ending: only their dates, when
      every header of the block has the dominant shape so far, else tuples of
      the few groups that matter. A ``Counter`` of those leaves a handful of
      distinct ones to read in Python. The first line of the file has no line
      ending before it and is matched on its own. With the C functions, most
      UTF-8 blocks are checked and counted without being decoded
      (:func:`_scan_utf8`).
    """
    scan = Scan()
    ending = ""
    speedups = bulk.active_speedups()
    for raw in _blocks(opener, encoding, source, speedups is not None):
        if isinstance(raw, bytes):
            # A plain UTF-8 block is counted without being decoded.
            if _scan_utf8(scan, raw, ending, speedups):
                ending = "\n" if raw.endswith(b"\n") else ""
                continue
            raw = decode_utf8_block(raw, opener, source)
        if scan.first_text is None:
            _find_first_text(scan, raw)
        if speedups is not None and not raw.isascii() and not speedups.has_any(
            raw, FORMAT_MARKS
        ):
            # One pass in C instead of one per mark.
            block = raw
        else:
            block = strip_block_marks(raw)
        scan.unmarked_blocks.append(block is raw)
        if block is None:
            _scan_lines(scan, split_lines(raw), ending)
        else:
            if not ending:
                _scan_first_line(scan, block)
            _scan_block(scan, ending + block)
        scan.lines += raw.count("\n")
        if "\r" in raw:
            scan.lines += raw.count("\r") - raw.count("\r\n")
        ending = _ending(raw)
        if not ending:
            # Only the last block can end without a line ending.
            scan.lines += 1

    return scan


def _blocks(
    opener: Opener, encoding: str, source: str, undecoded: bool
) -> Iterator[str | bytes]:
    """Yield the blocks of :func:`read_blocks`, as bytes when ``undecoded`` and UTF-8."""
    if undecoded and encoding == "utf-8-sig":
        return read_utf8_blocks(opener)
    return read_blocks(opener, encoding, source)


def _scan_utf8(scan: Scan, data: bytes, ending: str, speedups: Any) -> bool:
    """Scan a UTF-8 block without decoding it, as :func:`scan_export` would.

    It reads a block that comes after the first line of text and after an LF,
    once the dominant shape is known. The block must contain no CR, no
    format mark, no invalid byte and no header of another shape.

    Returns:
      True when the block was scanned, else False, having changed nothing.
    """
    shape = scan.dominant_shape
    if scan.first_text is None or ending != "\n" or shape is None:
        return False

    found = speedups.scan_utf8(data, shape, FORMAT_MARKS, True)
    if found is None:
        return False

    dates, lines = found
    key = tuple(shape)
    for date, count in dates.items():
        d1, d2, _ = date.split(shape.separator)
        _count_header(scan, key, d1, d2, count)
        scan.headers_after_lf += count
    scan.unmarked_blocks.append(True)
    scan.lines += lines
    if not data.endswith(b"\n"):
        scan.lines += 1
    return True


def _ending(block: str) -> str:
    """Return the line ending at the end of ``block``, or "" when there is none."""
    if block.endswith("\r\n"):
        return "\r\n"
    return block[-1:] if block.endswith(("\r", "\n")) else ""


def _count_header(
    scan: Scan, shape: tuple[bool, str, bool, bool, bool, bool], d1: str, d2: str,
    count: int,
) -> None:
    stats = scan.shapes.get(shape)
    if stats is None:
        stats = scan.shapes[shape] = ShapeStats()
    stats.count += count
    if int(d1) > 12:
        stats.first_over_12 += count
    if int(d2) > 12:
        stats.second_over_12 += count


def _scan_first_line(scan: Scan, block: str) -> None:
    """Count a header on the first line of the file, which follows no line ending."""
    match = HEADER.match(block)
    if match is not None:
        _count_header(scan, shape_of(match), match["d1"], match["d2"], 1)


@functools.lru_cache(maxsize=8)
def _dates_pattern(shape: HeaderShape) -> re.Pattern[str]:
    """Compile a pattern that finds the headers after an LF in a block.

    ``findall`` gives the date of each header of ``shape`` in ASCII digits,
    and an empty string for a line that starts like any other header.
    """
    exact = exact_header(shape, capture_time=False, digit="[0-9]")
    return re.compile(f"\n(?:{exact}|{ANY_HEADER})")


def _scan_dates(scan: Scan, text: str) -> bool:
    """Count the headers after an LF in ``text`` when all have the dominant shape.

    Counting the distinct dates of one shape costs a third of reading every
    header's fields. Returns False, having counted nothing, when a line starts
    like a header of another shape or no shape is known yet.
    """
    shape = scan.dominant_shape
    if shape is None:
        return False

    speedups = bulk.active_speedups()
    found = speedups.count_dates(text, shape) if speedups is not None else None
    if found is None:
        # Where the C count gives up, the regex may still count the block.
        found = Counter(_dates_pattern(shape).findall(text))
        if "" in found:
            return False

    key = tuple(shape)
    for date, count in found.items():
        d1, d2, _ = date.split(shape.separator)
        _count_header(scan, key, d1, d2, count)
        scan.headers_after_lf += count
    return True


def _scan_block(scan: Scan, text: str) -> None:
    """Count the headers that follow a line ending in ``text``."""
    if "\r" not in text and _scan_dates(scan, text):
        return

    if "\r" not in text:
        found = Counter(SCAN_HEADER_LF.findall(text))
        for (bracket, d1, sep, d2, comma, second, ampm), count in found.items():
            shape = (bool(bracket), sep, bool(comma), bool(second), bool(ampm), len(d1) == 4)
            _count_header(scan, shape, d1, d2, count)
            scan.headers_after_lf += count
        return

    found = Counter(SCAN_HEADER.findall(text))
    for (eol, bracket, d1, sep, d2, comma, second, ampm), count in found.items():
        shape = (bool(bracket), sep, bool(comma), bool(second), bool(ampm), len(d1) == 4)
        _count_header(scan, shape, d1, d2, count)
        if eol == "\r\n":
            scan.headers_after_crlf += count
        elif eol == "\n":
            scan.headers_after_lf += count


def _scan_lines(scan: Scan, lines: list[str], ending: str) -> None:
    """Scan a block line by line, for blocks whose format marks follow a CR."""
    previous_crlf: bool | None = ending == "\r\n" if ending in ("\r\n", "\n") else None
    for raw in lines:
        match = HEADER.match(strip_marks(raw.rstrip("\r\n")))
        if match is not None:
            _count_header(scan, shape_of(match), match["d1"], match["d2"], 1)
            if previous_crlf is True:
                scan.headers_after_crlf += 1
            elif previous_crlf is False:
                scan.headers_after_lf += 1

        previous_crlf = raw.endswith("\r\n") if raw.endswith("\n") else None


def _find_first_text(scan: Scan, block: str) -> None:
    """Record the first non-blank line of ``block``, if any.

    Called before the block's lines are counted, so they number on from there.
    """
    for number, raw in enumerate(iter_lines(block), scan.lines + 1):
        line = strip_marks(raw.rstrip("\r\n"))
        if line.strip():
            scan.first_text = (number, line)
            return
