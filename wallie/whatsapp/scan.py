"""First pass over an export: header shapes, date evidence and line endings."""

from __future__ import annotations

from dataclasses import dataclass, field

from wallie.whatsapp.header import HEADER, HeaderShape, shape_of, strip_marks
from wallie.whatsapp.source import Opener, read_lines

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
    """

    lines: int = 0
    first_text: tuple[int, str] | None = None
    shapes: dict[tuple[bool, str, bool, bool, bool, bool], ShapeStats] = field(
        default_factory=dict
    )
    headers_after_crlf: int = 0
    headers_after_lf: int = 0

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
    """Read every line once, matching only header starts.

    Parameters:
      opener: Opens the export as a binary stream.
      encoding: Codec of the export.
      source: Name of the export, for error messages.

    Returns:
      Header shapes with date evidence, and line-ending statistics.

    Raises:
      ExportEncodingError: When the bytes do not decode.
    """
    scan = Scan()
    shapes = scan.shapes
    previous_crlf: bool | None = None
    match_header = HEADER.match
    number = 0
    for number, raw in enumerate(read_lines(opener, encoding, source), 1):
        line = strip_marks(raw.rstrip("\r\n"))
        if scan.first_text is None and line.strip():
            scan.first_text = (number, line)

        match = match_header(line)
        if match is not None:
            shape = shape_of(match)
            stats = shapes.get(shape)
            if stats is None:
                stats = shapes[shape] = ShapeStats()
            stats.count += 1
            if int(match["d1"]) > 12:
                stats.first_over_12 += 1
            if int(match["d2"]) > 12:
                stats.second_over_12 += 1
            if previous_crlf is True:
                scan.headers_after_crlf += 1
            elif previous_crlf is False:
                scan.headers_after_lf += 1

        previous_crlf = raw.endswith("\r\n") if raw.endswith("\n") else None

    scan.lines = number
    return scan
