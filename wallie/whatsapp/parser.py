"""Parse a WhatsApp "Export chat" text file or zip into messages.

Design:

- Two passes over the file, both streamed in blocks of whole lines. The
  first pass (:mod:`.scan`) matches header starts only, to pick the dominant
  header shape, the date order and whether messages end with CRLF. The second
  pass splits each block at the headers of that shape with one regex
  (:mod:`.bulk`) and yields messages one at a time, so memory stays flat in
  the file size.
- The hottest loops of both passes also exist in C
  (``_speedups.c``), used when the package was built with a C compiler.
  They give the same results as the Python code or give up on a block,
  which the Python code then reads. ``bulk.SPEEDUPS`` and the setting
  ``WALLIE_WHATSAPP_C_PARSER`` switch them off.
- Every export uses one header shape. A line that matches a header of another
  shape, or a header whose date or time is invalid, is reported as unparsed,
  and so are the lines that follow it until the next good header. Appending
  them to the message above would produce wrong messages.
- When nearly every header follows a CRLF, a header-like line after a bare LF
  is text pasted into a message: it is kept as a continuation line and counted
  as a suspicious header-like line.
- A file with no header at all raises :class:`NotAnExportError` before any
  message is produced. A file whose headers give no message raises
  :class:`NoMessagesError` at the end of the generator, so success is never
  reported with zero messages.
"""

from __future__ import annotations

import datetime
from hashlib import sha256
import io
import os
import re
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import BinaryIO, cast

from wallie.logging import get_logger
from wallie.whatsapp.archive import (
    ArchiveLimits,
    check_archive,
    find_chat_member,
    media_members,
)
from wallie.whatsapp.bulk import CACHE_SIZE, BulkReader, Occurrences, new_occurrences
from wallie.whatsapp.errors import (
    DateOrderMismatchError,
    InvalidDateOrderError,
    NoMessagesError,
    NotAnExportError,
)
from wallie.whatsapp.header import (
    HEADER,
    HeaderShape,
    date_from_fields,
    shape_of,
    shape_pattern,
    split_lines,
    strip_block_marks,
    strip_marks,
    time_from_match,
)
from wallie.whatsapp.model import (
    Attachment,
    DateOrder,
    DateOrderSource,
    ParsedMessage,
    ParseReport,
    UnparsedLine,
)
from wallie.whatsapp.patterns import (
    classify_system_event,
    sender_system_event,
    special_body,
)
from wallie.whatsapp.phones import normalize_phone
from wallie.whatsapp.scan import Scan, scan_export
from wallie.whatsapp.source import Opener, opener_for_stream, read_blocks, sniff

logger = get_logger(__name__)

#: Accepted date orders.
DATE_ORDERS = ("dmy", "mdy", "ymd")

#: Characters kept in the excerpt of an unparsed line.
EXCERPT_LENGTH = 60

#: Unparsed lines kept as samples in the report.
UNPARSED_SAMPLES = 5

#: Longest text before a colon that still reads as a sender name, in characters.
MAX_SENDER_LENGTH = 100

#: Sender names whose ``~`` prefix marks a contact not in the address book,
#: optionally preceded by the number WhatsApp shows for it.
_UNSAVED_SENDER = re.compile(
    r"(?P<phone>\+[\d\s\-().\u00a0\u202f]{6,}?)?[ \u00a0\u202f]*~[ \u00a0\u202f]*"
    r"(?P<name>.+)"
)

_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")


def excerpt(line: str) -> str:
    """Return the start of ``line``, truncated to ``EXCERPT_LENGTH`` characters."""
    if len(line) <= EXCERPT_LENGTH:
        return line

    return line[: EXCERPT_LENGTH - 1] + "…"


def split_sender(rest: str) -> tuple[str | None, str]:
    """Split the text after a header into sender name and body.

    Returns:
      The raw sender name, or None for a system line, and the body.

    Note:
      A colon counts only when the text before it is short, has no quotes
      (which system lines put around group names), and the colon is not
      inside a time such as ``18:00``.
    """
    index = rest.find(":")
    if index <= 0 or index > MAX_SENDER_LENGTH:
        return None, rest

    name = rest[:index]
    after = rest[index + 1 : index + 2]
    if after.isdigit() or any(quote in name for quote in "\"“”«»"):
        return None, rest

    body = rest[index + 1 :]
    if body[:1] in (" ", "\u00a0"):
        body = body[1:]

    return name.strip(), body


def split_sender_text(text: str) -> tuple[str | None, str]:
    """Split the text after a header, continuation lines included, like :func:`split_sender`.

    Only a colon on the first line can end a sender name.

    Returns:
      The raw sender name, unstripped, or None for a system line, and the body.
    """
    index = text.find(":", 0, MAX_SENDER_LENGTH + 1)
    if index <= 0 or text.find("\n", 0, index) >= 0:
        return None, text

    name = text[:index]
    if text[index + 1 : index + 2].isdigit() or (
        '"' in name or "“" in name or "”" in name or "«" in name or "»" in name
    ):
        return None, text

    if text[index + 1 : index + 2] in (" ", "\u00a0"):
        return name, text[index + 2 :]

    return name, text[index + 1 :]


def read_sender(name: str, default_region: str | None) -> tuple[str, str | None, str]:
    """Read a sender name as display name, E.164 number and participant label.

    Returns:
      The display name without the ``~`` prefix of unsaved contacts, the
      number in E.164 form or None, and the participant label: the E.164
      number when the sender is shown only as a number, else the name.
    """
    unsaved = _UNSAVED_SENDER.fullmatch(name)
    if unsaved:
        display = unsaved["name"].strip()
        phone_text = unsaved["phone"] or display
        phone = normalize_phone(phone_text, default_region)
        if unsaved["phone"] is None and phone is not None:
            return display, phone, phone
        return display, phone, display

    phone = normalize_phone(name, default_region)
    return name, phone, phone or name


def message_key(material: str, index: int) -> str:
    """Hash the key material of a message and its occurrence index.

    The material is the ISO timestamp, the sender (E.164 number, else name,
    else empty) and the body as written in the export, joined by U+001F. The
    line number is left out, so the key survives a later export that overlaps.
    The UTF-8 bytes of the material, U+001F and the index are hashed with
    SHA-256 in one call.
    """
    return sha256(f"{material}\x1f{index}".encode()).hexdigest()


def decide_date_order(
    scan: Scan,
    shape: HeaderShape,
    date_order: str | None,
    fallback_date_order: str,
    source: str = "the export",
) -> tuple[DateOrder, DateOrderSource]:
    """Decide the date order from the caller, the file, or the fallback.

    Returns:
      The order and where it came from.

    Raises:
      DateOrderMismatchError: ``date_order`` is forced but every date that
        settles the order contradicts it, or the year is not where it says.

    Note:
      When some headers have a first field above 12 and others a second
      field above 12, the majority wins and the other headers are reported
      as unparsed because their dates are invalid in that order.
    """
    if date_order is not None:
        _check_forced_order(scan, shape, date_order, source)
        return cast(DateOrder, date_order), "explicit"

    if shape.year_first:
        return "ymd", "file"

    stats = scan.shapes[tuple(shape)]
    if stats.first_over_12 or stats.second_over_12:
        if stats.first_over_12 >= stats.second_over_12:
            return "dmy", "file"
        return "mdy", "file"

    # NOTE: The order of dates through the file (chronology) could settle some
    # of these files too, but is not used, so the caller's fallback decides.
    return cast(DateOrder, fallback_date_order), "locale"


def _check_forced_order(scan: Scan, shape: HeaderShape, date_order: str, source: str) -> None:
    if shape.year_first and date_order != "ymd":
        raise DateOrderMismatchError(source, date_order, "its dates start with a four-digit year")

    if not shape.year_first and date_order == "ymd":
        raise DateOrderMismatchError(source, date_order, "its dates do not start with a four-digit year")

    stats = scan.shapes[tuple(shape)]
    # Mixed files (some dates settle dmy, others mdy) keep the caller's choice.
    if date_order == "mdy" and stats.first_over_12 and not stats.second_over_12:
        raise DateOrderMismatchError(
            source, date_order,
            f"{stats.first_over_12} dates have a first number above 12, so it is the day",
        )

    if date_order == "dmy" and stats.second_over_12 and not stats.first_over_12:
        raise DateOrderMismatchError(
            source, date_order,
            f"{stats.second_over_12} dates have a second number above 12, so it is the day",
        )


def _check_order(value: str | None) -> None:
    if value is not None and value not in DATE_ORDERS:
        raise InvalidDateOrderError(value)


@dataclass(slots=True)
class _Pass:
    """State of one pass over the messages, carried from block to block.

    Attributes:
      report: Counts of this pass.
      participants: Participant labels seen so far.
      occurrences: Counts of identical messages.
      number: Lines read so far.
      pending: Line number, timestamp and ISO timestamp of the message whose
        lines are being gathered, or None.
      parts: Text after the pending header, in pieces of whole lines.
      seen_header: True once a line matched a header.
      previous_crlf: True when the last line read ended with CRLF.
      senders: Sender names read in bulk in this pass, with their display
        name, E.164 number and the part of the key that names them.
    """

    report: ParseReport
    participants: set[str] = field(default_factory=set)
    occurrences: Occurrences = field(default_factory=new_occurrences)
    number: int = 0
    pending: tuple[int, datetime.datetime, str] | None = None
    parts: list[str] = field(default_factory=list)
    seen_header: bool = False
    previous_crlf: bool = False
    senders: dict[str, tuple[str, str | None, str]] = field(default_factory=dict)


#: Timestamp, ISO timestamp, clock anomaly and problem of one header's date
#: and time: a None timestamp and the reason when they are invalid.
_Stamp = tuple[datetime.datetime | None, str, bool, str]

#: Fields of :class:`ParsedMessage` in the order :func:`_new_message` takes them.
_MESSAGE_FIELDS = (
    "timestamp", "sender", "sender_phone", "text", "kind", "system_event",
    "attachments", "is_deleted", "is_edited", "is_location", "key", "line_number",
)

if tuple(item.name for item in fields(ParsedMessage)) != _MESSAGE_FIELDS:
    raise RuntimeError("ParsedMessage fields changed; update _new_message to match.")


def _new_message(
    timestamp: datetime.datetime,
    sender: str | None,
    sender_phone: str | None,
    text: str,
    kind: str,
    system_event: str | None,
    attachments: tuple[Attachment, ...],
    is_deleted: bool,
    is_edited: bool,
    is_location: bool,
    key: str,
    line_number: int,
    _new: Callable[[type[ParsedMessage]], ParsedMessage] = object.__new__,
    _set: Callable[[object, str, object], None] = object.__setattr__,
) -> ParsedMessage:
    """Build a :class:`ParsedMessage` without its generated ``__init__``.

    The frozen dataclass's ``__init__`` looks up ``object.__setattr__`` again
    for every field. Binding it once halves the cost of building a message,
    which was the largest single cost per message. The result is the same
    object the dataclass would build.
    """
    message = _new(ParsedMessage)
    _set(message, "timestamp", timestamp)
    _set(message, "sender", sender)
    _set(message, "sender_phone", sender_phone)
    _set(message, "text", text)
    _set(message, "kind", kind)
    _set(message, "system_event", system_event)
    _set(message, "attachments", attachments)
    _set(message, "is_deleted", is_deleted)
    _set(message, "is_edited", is_edited)
    _set(message, "is_location", is_location)
    _set(message, "key", key)
    _set(message, "line_number", line_number)
    return message


class ParsedExport:
    """A parsed export whose messages are read lazily, one pass per call.

    Attributes:
      source: Name of the file, or of the archive and chat member.
      encoding: Codec used to decode the chat text.
      date_order: ``"dmy"``, ``"mdy"`` or ``"ymd"``.
      date_order_source: ``"file"``, ``"locale"`` or ``"explicit"``.
      shape: Header shape of the messages that are parsed.
    """

    def __init__(
        self,
        *,
        source: str,
        opener: Opener,
        encoding: str,
        scan: Scan,
        date_order: DateOrder,
        date_order_source: DateOrderSource,
        default_region: str | None,
        media: dict[str, str],
        cleanup: Callable[[], None],
    ) -> None:
        shape = scan.dominant_shape
        assert shape is not None
        self.source = source
        self.encoding = encoding
        self.date_order = date_order
        self.date_order_source = date_order_source
        self.shape = shape
        self._opener = opener
        self._scan = scan
        self._crlf_terminated = scan.crlf_terminated
        self._default_region = default_region
        self._media = media
        self._cleanup = cleanup
        self._report: ParseReport | None = None
        self._participants: list[str] | None = None
        self._dates: dict[tuple[str, str, str], datetime.date | None] = {}
        self._senders: dict[str, tuple[str, str | None, str]] = {}
        self._times: dict[tuple[str, ...], tuple[datetime.time | None, bool]] = {}
        self._day_texts: dict[str, tuple[datetime.date | None, str]] = {}
        self._clock_texts: dict[str, tuple[datetime.time | None, str, bool]] = {}

    def __enter__(self) -> ParsedExport:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Remove the temporary copy of a non-seekable stream, if one was made."""
        self._cleanup()
        self._cleanup = lambda: None

    @property
    def report(self) -> ParseReport:
        """Counts of the last complete pass, running a pass first when none finished."""
        if self._report is None or not self._report.complete:
            for _ in self.messages():
                pass
        assert self._report is not None
        return self._report

    @property
    def participants(self) -> list[str]:
        """Sorted senders of chat messages: names, or E.164 numbers for numbers.

        Runs a pass first when none finished.
        """
        if self._participants is None:
            for _ in self.messages():
                pass
        assert self._participants is not None
        return self._participants

    def messages(self) -> Iterator[ParsedMessage]:
        """Yield the messages and system events in file order.

        Raises:
          ExportEncodingError: When the bytes do not decode.
          NoMessagesError: At the end, when no header gave a message.

        Note:
          The text is read in blocks of whole lines. A block is read in bulk
          (:class:`~wallie.whatsapp.bulk.BulkReader`), which hands what it
          does not read to one regex search for header starts
          (:meth:`_read_block`). A line ending forces the line-by-line reading
          (:meth:`_read_lines`) instead: a bare CR, a format mark after a CR,
          or, in a file whose messages end with CRLF, a bare LF, which makes
          a header-like line message text.
        """
        report = ParseReport(
            source=self.source,
            encoding=self.encoding,
            header_shape=self.shape.describe(self.date_order),
        )
        state = _Pass(report)
        bulk = BulkReader(self)
        unmarked = self._scan.unmarked_blocks
        blocks = read_blocks(self._opener, self.encoding, self.source)
        for index, raw in enumerate(blocks):
            # The first pass read the same blocks and found which have no
            # format mark.
            text = self._block_text(raw, state, index < len(unmarked) and unmarked[index])
            if text is None:
                yield from self._read_lines(split_lines(raw), state)
            else:
                yield from bulk.read(text, state)

        if state.pending is not None:
            yield self._build(*state.pending, "\n".join(state.parts), state)

        report.lines = state.number
        report.complete = True
        self._report = report
        self._participants = sorted(state.participants)
        self._finish(report)

    def _block_text(self, raw: str, state: _Pass, unmarked: bool = False) -> str | None:
        """Prepare a block for :meth:`_read_block`, or return None if it cannot be.

        Returns:
          The block without format marks, with LF line endings and ending with
          one, or None when the block must be read line by line.
        """
        block = raw if unmarked else strip_block_marks(raw)
        if block is None:
            return None

        if "\r" in block:
            crlf = block.count("\r\n")
            if block.count("\r") != crlf:
                return None
            if self._crlf_terminated and (
                block.count("\n") != crlf
                or (state.pending is not None and not state.previous_crlf)
            ):
                return None
            state.previous_crlf = block.endswith("\r\n")
            block = block.replace("\r\n", "\n")
        elif self._crlf_terminated:
            return None
        else:
            state.previous_crlf = False

        return block if block.endswith("\n") else block + "\n"

    def _read_block(self, text: str, state: _Pass) -> Iterator[ParsedMessage]:
        """Yield the messages completed in a block of LF-terminated lines.

        Parameters:
          text: Whole lines, each ending with LF, without format marks.
          state: The pass, updated with the message still pending at the end.

        Note:
          ``start`` is where the text of the pending message, or the lines
          after a header that did not parse, begin; ``fresh`` is True when
          ``start`` is the end of a header in this block rather than the start
          of the block. The state is copied to locals, the hot loop's cheapest
          storage, and written back at the end of the block.
        """
        report = state.report
        count = text.count
        stamp_of = self._stamp
        build = self._build
        pending = state.pending
        parts = state.parts
        start = 0
        start_line = state.number + 1
        fresh = False
        continuation = 0
        for match in shape_pattern(self.shape).finditer(text):
            at = match.start()
            header = None
            if match[1] is None:
                header = HEADER.match(text, at)
                if header is None:
                    continue

            line = start_line + count("\n", start, at)
            if pending is not None:
                continuation += line - start_line - fresh
                if parts:
                    if fresh or at > start:
                        parts.append(text[start : at - 1])
                    yield build(*pending, "\n".join(parts), state)
                    parts = []
                else:
                    yield build(*pending, text[start : at - 1], state)
            elif at > start or fresh:
                self._unparsed_lines(text, start, at, start_line, fresh, state)
            state.seen_header = True

            if header is None:
                timestamp, iso, anomaly, problem = stamp_of(text, match)
                start = match.end()
            else:
                timestamp, iso, anomaly, problem = self._timestamp(header)
                start = header.end()
            start_line = line
            fresh = True
            if timestamp is None:
                end = text.index("\n", at)
                self._unparsed(report, line, text[at:end], problem)
                pending = None
                continue

            if anomaly:
                report.clock_anomalies += 1
            pending = (line, timestamp, iso)

        end = len(text)
        lines = count("\n", start, end)
        if pending is not None:
            parts.append(text[start : end - 1])
            continuation += lines - fresh
        elif end > start:
            self._unparsed_lines(text, start, end, start_line, fresh, state)
        report.continuation_lines += continuation
        state.pending = pending
        state.parts = parts
        state.number = start_line + lines - 1

    def _stamp(self, text: str, match: re.Match[str]) -> _Stamp:
        """Build the timestamp of a header found by the shape pattern.

        Dates and times are cached apart, by their text in the header, because
        exports repeat both but rarely the same minute of the same day.
        """
        date_text, time_text = match.group(1, 2)
        day = self._day_texts.get(date_text)
        clock = self._clock_texts.get(time_text)
        if day is None or clock is None:
            header = HEADER.match(text, match.start())
            assert header is not None
            timestamp, iso, anomaly, problem = self._timestamp(header)
            if len(self._day_texts) > CACHE_SIZE:
                self._day_texts.clear()
            if len(self._clock_texts) > CACHE_SIZE:
                self._clock_texts.clear()
            if problem.startswith("its date"):
                self._day_texts[date_text] = (None, "")
            elif not problem or problem.startswith("its time"):
                date = self._dates[(header["d1"], header["d2"], header["d3"])]
                assert date is not None
                self._day_texts[date_text] = (date, date.isoformat())
                time, anomaly = self._times[header.group("hour", "minute", "second", "ampm")]
                self._clock_texts[time_text] = (
                    time, time.isoformat() if time is not None else "", anomaly
                )
            return timestamp, iso, anomaly, problem

        date, date_iso = day
        if date is None:
            return None, "", False, f"its date is invalid in the {self.date_order} order"

        time, time_iso, anomaly = clock
        if time is None:
            return None, "", False, "its time is invalid"

        return datetime.datetime.combine(date, time), f"{date_iso}T{time_iso}", anomaly, ""

    def _unparsed_lines(
        self, text: str, start: int, end: int, line: int, fresh: bool, state: _Pass
    ) -> None:
        """Report the non-blank lines of ``text[start:end]`` that no header owns.

        Parameters:
          line: Number of the line at ``start``.
          fresh: True when ``start`` is the end of a header that did not parse,
            whose line was reported already.
        """
        reason = (
            "it follows a line that did not parse"
            if state.seen_header
            else "it comes before the first message"
        )
        lines = text[start : end - 1].split("\n")
        for number, content in enumerate(lines, line):
            if fresh and number == line:
                continue
            if content.strip():
                self._unparsed(state.report, number, content, reason)

    def _read_lines(self, lines: list[str], state: _Pass) -> Iterator[ParsedMessage]:
        """Yield the messages completed in a block, reading it line by line."""
        report = state.report
        crlf_terminated = self._crlf_terminated
        for raw in lines:
            state.number += 1
            line = strip_marks(raw.rstrip("\r\n"))
            match = HEADER.match(line)
            if (
                match is not None
                and crlf_terminated
                and not state.previous_crlf
                and state.pending is not None
            ):
                report.suspicious_header_lines += 1
                match = None
            state.previous_crlf = raw.endswith("\r\n")

            if match is None:
                if state.pending is not None:
                    state.parts.append(line)
                    report.continuation_lines += 1
                elif line.strip():
                    reason = (
                        "it follows a line that did not parse"
                        if state.seen_header
                        else "it comes before the first message"
                    )
                    self._unparsed(report, state.number, line, reason)
                continue

            state.seen_header = True
            if state.pending is not None:
                yield self._build(*state.pending, "\n".join(state.parts), state)
                state.pending = None
                state.parts = []

            timestamp, iso, anomaly, problem = self._timestamp(match)
            if timestamp is None:
                self._unparsed(report, state.number, line, problem)
                continue

            if anomaly:
                report.clock_anomalies += 1
            state.pending = (state.number, timestamp, iso)
            state.parts.append(line[match.end() :])

    def _finish(self, report: ParseReport) -> None:
        """Log the outcome of a pass, and raise when it gave no message."""
        logger.info(
            "Parsed %d messages, %d of them system events, from %s, and "
            "%d lines did not parse.",
            report.messages,
            report.system_messages,
            self.source,
            report.unparsed_lines,
        )
        if report.messages == 0:
            first = report.unparsed_samples[0] if report.unparsed_samples else None
            raise NoMessagesError(
                self.source,
                first.line_number if first else 0,
                first.excerpt if first else "",
                first.reason if first else "the file has no message",
            )

    def _unparsed(self, report: ParseReport, number: int, line: str, reason: str) -> None:
        report.unparsed_lines += 1
        if len(report.unparsed_samples) < UNPARSED_SAMPLES:
            report.unparsed_samples.append(UnparsedLine(number, excerpt(line), reason))

    def _timestamp(self, match: re.Match[str]) -> _Stamp:
        """Build the timestamp of a header of the dominant shape.

        Returns:
          The timestamp, its ISO form, whether the clock is anomalous, and
          when the timestamp is None, the reason it could not be built.
        """
        if shape_of(match) != self.shape:
            return None, "", False, (
                "its header shape differs from the main shape of the file, "
                f"{self.shape.describe(self.date_order)}"
            )

        fields = (match["d1"], match["d2"], match["d3"])
        date = self._dates.get(fields)
        if date is None:
            if len(self._dates) > CACHE_SIZE:
                self._dates.clear()
            date = self._dates[fields] = date_from_fields(*fields, self.date_order)
        if date is None:
            return None, "", False, f"its date is invalid in the {self.date_order} order"

        clock = match.group("hour", "minute", "second", "ampm")
        cached = self._times.get(clock)
        if cached is None:
            if len(self._times) > CACHE_SIZE:
                self._times.clear()
            cached = self._times[clock] = time_from_match(match)
        time, anomaly = cached
        if time is None:
            return None, "", False, "its time is invalid"

        timestamp = datetime.datetime.combine(date, time)
        return timestamp, timestamp.isoformat(), anomaly, ""

    def _sender(self, name: str) -> tuple[str, str | None, str]:
        cached = self._senders.get(name)
        if cached is None:
            if len(self._senders) > CACHE_SIZE:
                self._senders.clear()
            cached = self._senders[name] = read_sender(name.strip(), self._default_region)
        return cached

    def _build(
        self,
        number: int,
        timestamp: datetime.datetime,
        iso: str,
        text: str,
        state: _Pass,
    ) -> ParsedMessage:
        """Turn a header and the text after it into a message.

        Parameters:
          number: Line number of the header.
          timestamp: Timestamp of the header.
          iso: ``timestamp`` in ISO form, for the key.
          text: The text after the header, continuation lines included.
          state: The pass, whose counts and participants are updated.
        """
        report = state.report
        name, body = split_sender_text(text)
        if "\n" in body:
            body = "\n".join(part.rstrip() for part in body.split("\n"))
        body = body.rstrip()

        event = classify_system_event(body) if name is None else sender_system_event(body)
        if event is not None:
            material = f"{iso}\x1f\x1f{body}"
            key = message_key(material, state.occurrences.index(timestamp, material))
            report.messages += 1
            report.system_messages += 1
            return _new_message(
                timestamp, None, None, body, "system", event, (), False, False, False,
                key, number,
            )

        assert name is not None
        display, phone, label = self._senders.get(name) or self._sender(name)
        state.participants.add(label)
        material = f"{iso}\x1f{phone or display}\x1f{body}"
        # message_key, inlined on the hot path.
        key = sha256(
            f"{material}\x1f{state.occurrences.index(timestamp, material)}".encode()
        ).hexdigest()
        report.messages += 1
        read = special_body(body)
        if read is None:
            return _new_message(
                timestamp, display, phone, body, "chat", None, (), False, False, False,
                key, number,
            )

        attachments = tuple(self._link(attachment) for attachment in read.attachments)
        report.media += len(attachments)
        return _new_message(
            timestamp, display, phone, read.text, "chat", None, attachments,
            read.is_deleted, read.is_edited, read.is_location, key, number,
        )

    def _link(self, attachment: Attachment) -> Attachment:
        """Point an attachment at the zip member of the same name, if any."""
        if attachment.file_name and attachment.file_name in self._media:
            return replace(attachment, member=self._media[attachment.file_name])
        return attachment


def _source_opener(
    source: str | os.PathLike[str] | BinaryIO, name: str | None
) -> tuple[Opener, Callable[[], None], str]:
    """Build an opener for a path or a binary stream, and a name for messages."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        return (lambda: open(path, "rb")), (lambda: None), name or str(path)

    opener, cleanup = opener_for_stream(source)
    label = name or str(getattr(source, "name", "<stream>"))
    return opener, cleanup, label


def _is_zip(opener: Opener) -> bool:
    with opener() as stream:
        return stream.read(4) in _ZIP_MAGIC


def _zip_member_opener(
    opener: Opener, source: str, limits: ArchiveLimits | None
) -> tuple[Opener, str, dict[str, str]]:
    """Check a zip export and build an opener for its chat member."""
    with opener() as stream, zipfile.ZipFile(stream) as archive:
        check_archive(archive, source, limits)
        member = find_chat_member(archive, source)
        media = media_members(archive)

    @contextmanager
    def open_member() -> Iterator[BinaryIO]:
        with opener() as stream, zipfile.ZipFile(stream) as archive:
            with archive.open(member) as reader:
                yield cast(BinaryIO, io.BufferedReader(reader))  # type: ignore[arg-type]

    return open_member, member, media


def parse_export(
    source: str | os.PathLike[str] | BinaryIO,
    *,
    date_order: str | None = None,
    fallback_date_order: str = "dmy",
    default_region: str | None = None,
    limits: ArchiveLimits | None = None,
    name: str | None = None,
) -> ParsedExport:
    """Open a WhatsApp export and read its header lines once.

    Parameters:
      source: Path of a ``.txt`` or ``.zip`` export, or a binary stream of one.
        A stream that cannot seek is copied to a temporary file first.
      date_order: ``"dmy"``, ``"mdy"`` or ``"ymd"`` to force an order.
      fallback_date_order: Order used when no date in the file is above 12,
        usually from the user's locale.
      default_region: ISO 3166 region for numbers without a country code.
      limits: Size and ratio limits for zip exports, or None for the defaults.
      name: Name of the export in messages and logs, or None for the path.

    Returns:
      The export, whose :meth:`ParsedExport.messages` reads the file again.

    Raises:
      InvalidDateOrderError: For an order other than dmy, mdy or ymd.
      DateOrderMismatchError: When a forced order contradicts the file's dates.
      NotAnExportError: When no line starts like a message header.
      ExportEncodingError: When the bytes do not decode.
      UnsafeArchiveError: When a zip member is unsafe or a limit is exceeded.
      ChatNotFoundError: When a zip holds no chat text file.
    """
    _check_order(date_order)
    _check_order(fallback_date_order)
    opener, cleanup, label = _source_opener(source, name)
    try:
        return _parse(opener, cleanup, label, date_order, fallback_date_order,
                      default_region, limits)
    except BaseException:
        cleanup()
        raise


def _parse(
    opener: Opener,
    cleanup: Callable[[], None],
    label: str,
    date_order: str | None,
    fallback_date_order: str,
    default_region: str | None,
    limits: ArchiveLimits | None,
) -> ParsedExport:
    media: dict[str, str] = {}
    if _is_zip(opener):
        opener, member, media = _zip_member_opener(opener, label, limits)
        label = f"{label}:{member}"

    encoding = sniff(opener)
    scan = scan_export(opener, encoding, label)
    shape = scan.dominant_shape
    if shape is None:
        number, text = scan.first_text or (0, "")
        raise NotAnExportError(label, number, excerpt(text))

    order, order_source = decide_date_order(scan, shape, date_order, fallback_date_order, label)
    logger.info(
        "Reading %s as %s with header shape %s and date order %s from %s.",
        label,
        encoding,
        shape.describe(order),
        order,
        order_source,
    )
    return ParsedExport(
        source=label,
        opener=opener,
        encoding=encoding,
        scan=scan,
        date_order=order,
        date_order_source=order_source,
        default_region=default_region,
        media=media,
        cleanup=cleanup,
    )
