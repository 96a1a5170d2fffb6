"""Parse a WhatsApp "Export chat" text file or zip into messages.

Design:

- Two passes over the file, both streamed. The first pass (:mod:`.scan`)
  matches header starts only, to pick the dominant header shape, the date
  order and whether messages end with CRLF. The second pass yields messages
  one at a time, so memory stays flat in the file size.
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
import hashlib
import io
import os
import re
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import BinaryIO, cast

from wallie.logging import get_logger
from wallie.whatsapp.archive import (
    ArchiveLimits,
    check_archive,
    find_chat_member,
    media_members,
)
from wallie.whatsapp.errors import (
    InvalidDateOrderError,
    NoMessagesError,
    NotAnExportError,
)
from wallie.whatsapp.header import (
    HEADER,
    HeaderShape,
    date_from_fields,
    shape_of,
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
    read_body,
    sender_system_event,
)
from wallie.whatsapp.phones import normalize_phone
from wallie.whatsapp.scan import Scan, scan_export
from wallie.whatsapp.source import Opener, opener_for_stream, read_lines, sniff

logger = get_logger(__name__)

#: Accepted date orders.
DATE_ORDERS = ("dmy", "mdy", "ymd")

#: Characters kept in the excerpt of an unparsed line.
EXCERPT_LENGTH = 60

#: Unparsed lines kept as samples in the report.
UNPARSED_SAMPLES = 5

#: Longest text before a colon that still reads as a sender name, in characters.
MAX_SENDER_LENGTH = 100

#: Distinct timestamps whose message counts are kept for occurrence indexes.
#: Identical messages share a timestamp, so only nearby ones need counting.
OCCURRENCE_WINDOW = 4096

#: Entries kept in the date and sender caches before they are cleared.
CACHE_SIZE = 4096

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


class _Occurrences:
    """Count identical (timestamp, sender, body) triples within a window.

    The key material itself is the dictionary key, because the window bounds
    memory and hashing it here as well would double the hashing cost.

    NOTE: A triple that comes back after more than ``OCCURRENCE_WINDOW``
    other timestamps, which needs out-of-order lines, restarts at index 0.
    """

    def __init__(self) -> None:
        self._buckets: OrderedDict[datetime.datetime, dict[bytes, int]] = OrderedDict()

    def index(self, timestamp: datetime.datetime, material: bytes) -> int:
        """Return how many identical triples came before this one."""
        bucket = self._buckets.get(timestamp)
        if bucket is None:
            bucket = self._buckets[timestamp] = {}
            if len(self._buckets) > OCCURRENCE_WINDOW:
                self._buckets.popitem(last=False)

        count = bucket.get(material, 0)
        bucket[material] = count + 1
        return count


def message_key(material: bytes, index: int) -> str:
    """Hash the key material of a message and its occurrence index.

    The material is the ISO timestamp, the sender (E.164 number, else name,
    else empty) and the body as written in the export, joined by U+001F. The
    line number is left out, so the key survives a later export that overlaps.
    """
    return hashlib.sha256(material + b"\x1f" + str(index).encode()).hexdigest()


def decide_date_order(
    scan: Scan,
    shape: HeaderShape,
    date_order: str | None,
    fallback_date_order: str,
) -> tuple[DateOrder, DateOrderSource]:
    """Decide the date order from the caller, the file, or the fallback.

    Returns:
      The order and where it came from.

    Note:
      When some headers have a first field above 12 and others a second
      field above 12, the majority wins and the other headers are reported
      as unparsed because their dates are invalid in that order.
    """
    if date_order is not None:
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


def _check_order(value: str | None) -> None:
    if value is not None and value not in DATE_ORDERS:
        raise InvalidDateOrderError(value)


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
        """
        report = ParseReport(
            source=self.source, encoding=self.encoding, header_shape=self.shape.describe(self.date_order)
        )
        participants: set[str] = set()
        occurrences = _Occurrences()
        pending: tuple[int, datetime.datetime, str] | None = None
        body_lines: list[str] = []
        seen_header = False
        previous_crlf = False
        match_header = HEADER.match
        crlf_terminated = self._crlf_terminated

        number = 0
        for number, raw in enumerate(read_lines(self._opener, self.encoding, self.source), 1):
            line = strip_marks(raw.rstrip("\r\n"))
            match = match_header(line)
            if match is not None and crlf_terminated and not previous_crlf and pending:
                report.suspicious_header_lines += 1
                match = None
            previous_crlf = raw.endswith("\r\n")

            if match is None:
                if pending is not None:
                    body_lines.append(line)
                    report.continuation_lines += 1
                elif line.strip():
                    reason = (
                        "it follows a line that did not parse"
                        if seen_header
                        else "it comes before the first message"
                    )
                    self._unparsed(report, number, line, reason)
                continue

            seen_header = True
            if pending is not None:
                yield self._build(pending, body_lines, report, participants, occurrences)
                pending = None
                body_lines = []

            timestamp, problem = self._timestamp(match, report)
            if timestamp is None:
                self._unparsed(report, number, line, problem)
                continue

            pending = (number, timestamp, line[match.end() :])

        if pending is not None:
            yield self._build(pending, body_lines, report, participants, occurrences)

        report.lines = number
        report.complete = True
        self._report = report
        self._participants = sorted(participants)
        self._finish(report)

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

    def _timestamp(
        self, match: re.Match[str], report: ParseReport
    ) -> tuple[datetime.datetime | None, str]:
        """Build the timestamp of a header of the dominant shape.

        Returns:
          The timestamp, or None and the reason it could not be built.
        """
        if shape_of(match) != self.shape:
            return None, (
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
            return None, f"its date is invalid in the {self.date_order} order"

        clock = match.group("hour", "minute", "second", "ampm")
        cached = self._times.get(clock)
        if cached is None:
            if len(self._times) > CACHE_SIZE:
                self._times.clear()
            cached = self._times[clock] = time_from_match(match)
        time, anomaly = cached
        if time is None:
            return None, "its time is invalid"
        if anomaly:
            report.clock_anomalies += 1

        return datetime.datetime.combine(date, time), ""

    def _sender(self, name: str) -> tuple[str, str | None, str]:
        cached = self._senders.get(name)
        if cached is None:
            if len(self._senders) > CACHE_SIZE:
                self._senders.clear()
            cached = self._senders[name] = read_sender(name, self._default_region)
        return cached

    def _build(
        self,
        pending: tuple[int, datetime.datetime, str],
        body_lines: list[str],
        report: ParseReport,
        participants: set[str],
        occurrences: _Occurrences,
    ) -> ParsedMessage:
        """Turn a header and its continuation lines into a message."""
        number, timestamp, rest = pending
        name, body = split_sender(rest)
        if body_lines:
            body = "\n".join([body, *body_lines])
            body = "\n".join(part.rstrip() for part in body.split("\n"))
        body = body.rstrip()

        event = classify_system_event(body) if name is None else sender_system_event(body)
        if event is not None:
            return self._system(number, timestamp, body, event, report, occurrences)

        assert name is not None
        display, phone, label = self._sender(name)
        participants.add(label)
        material = f"{timestamp.isoformat()}\x1f{phone or display}\x1f{body}".encode()
        key = message_key(material, occurrences.index(timestamp, material))
        read = read_body(body)
        attachments = tuple(self._link(attachment) for attachment in read.attachments)
        report.messages += 1
        report.media += len(attachments)
        return ParsedMessage(
            timestamp=timestamp,
            sender=display,
            sender_phone=phone,
            text=read.text,
            kind="chat",
            attachments=attachments,
            is_deleted=read.is_deleted,
            is_edited=read.is_edited,
            is_location=read.is_location,
            key=key,
            line_number=number,
        )

    def _system(
        self,
        number: int,
        timestamp: datetime.datetime,
        text: str,
        event: str,
        report: ParseReport,
        occurrences: _Occurrences,
    ) -> ParsedMessage:
        material = f"{timestamp.isoformat()}\x1f\x1f{text}".encode()
        report.messages += 1
        report.system_messages += 1
        return ParsedMessage(
            timestamp=timestamp,
            sender=None,
            sender_phone=None,
            text=text,
            kind="system",
            system_event=event,
            key=message_key(material, occurrences.index(timestamp, material)),
            line_number=number,
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

    order, order_source = decide_date_order(scan, shape, date_order, fallback_date_order)
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
