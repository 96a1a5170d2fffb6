"""Values produced by the WhatsApp export parser."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Literal

#: Kinds of attachment, ``"other"`` when a placeholder names no type.
AttachmentKind = Literal["image", "audio", "video", "document", "sticker", "other"]

#: ``"chat"`` for a message written by a participant, ``"system"`` otherwise.
MessageKind = Literal["chat", "system"]

#: Day, month and year order of the dates in an export.
DateOrder = Literal["dmy", "mdy", "ymd"]

#: Where the date order came from: the file's own dates, the caller's locale
#: fallback, or an order the caller passed explicitly.
DateOrderSource = Literal["file", "locale", "explicit"]


@dataclass(frozen=True, slots=True)
class Attachment:
    """A media file sent in a message, or a placeholder for one left out.

    Attributes:
      kind: Media type guessed from the extension, file name or placeholder.
      file_name: Name of the file in the export, or None when the export left
        the media out.
      needs_transcription: True for voice notes (``.opus`` files or ``PTT-`` names).
      member: Name of the zip member holding the file, when the export is a
        zip that contains it.
    """

    kind: AttachmentKind
    file_name: str | None = None
    needs_transcription: bool = False
    member: str | None = None


@dataclass(frozen=True, slots=True)
class ParsedMessage:
    """One message or system event of an export.

    Attributes:
      timestamp: Naive wall-clock time as shown in the export.
      sender: Display name, or the number as shown for unsaved contacts, or
        None for system events.
      sender_phone: The sender's number in E.164 form, or None.
      text: Body with format marks and media placeholders removed.
      kind: ``"chat"`` or ``"system"``.
      system_event: For system events, a short name such as ``"added"`` or
        ``"encryption"``, or ``"other"``. None for chat messages.
      attachments: Media sent with the message.
      is_deleted: True when the message shows a "deleted" notice.
      is_edited: True when the message carries an "edited" marker.
      is_location: True for a location pin or a live location share.
      key: Hex SHA-256 that identifies the message across overlapping exports.
      line_number: Line of the header in the export, counted from 1.
    """

    timestamp: datetime.datetime
    sender: str | None
    sender_phone: str | None
    text: str
    kind: MessageKind
    system_event: str | None = None
    attachments: tuple[Attachment, ...] = ()
    is_deleted: bool = False
    is_edited: bool = False
    is_location: bool = False
    key: str = ""
    line_number: int = 0


@dataclass(frozen=True, slots=True)
class UnparsedLine:
    """A line that was left out of every message.

    Attributes:
      line_number: Counted from 1.
      excerpt: The start of the line, truncated.
      reason: Why the line was left out.
    """

    line_number: int
    excerpt: str
    reason: str


@dataclass(slots=True)
class ParseReport:
    """Counts gathered while parsing one export.

    The counts are final only when ``complete`` is True, that is after the
    message generator ran to its end.

    Attributes:
      source: The file or archive member that was read.
      encoding: Codec used to decode the file.
      header_shape: Description of the message header shape that was parsed.
      lines: Lines read.
      messages: Messages produced, system events included.
      system_messages: System events produced.
      media: Attachments produced.
      continuation_lines: Lines appended to the message above them.
      unparsed_lines: Lines left out of every message.
      unparsed_samples: The first few unparsed lines.
      suspicious_header_lines: Lines that look like a header but were kept as
        continuation lines, because the file ends messages with CRLF and these
        lines follow a bare LF.
      clock_anomalies: Headers with an AM/PM marker and hour 0 or above 12,
        read as a 24-hour time.
      complete: True once every line was read.
    """

    source: str
    encoding: str
    header_shape: str = ""
    lines: int = 0
    messages: int = 0
    system_messages: int = 0
    media: int = 0
    continuation_lines: int = 0
    unparsed_lines: int = 0
    unparsed_samples: list[UnparsedLine] = field(default_factory=list)
    suspicious_header_lines: int = 0
    clock_anomalies: int = 0
    complete: bool = False

    @property
    def ok(self) -> bool:
        """True when every line was read, every line parsed and messages exist."""
        return self.complete and self.messages > 0 and self.unparsed_lines == 0
