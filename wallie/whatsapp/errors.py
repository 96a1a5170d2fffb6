"""Errors raised while reading WhatsApp chat exports."""

from __future__ import annotations

from wallie.errors import WallieError


class WhatsAppError(WallieError):
    """Raised when a WhatsApp export cannot be read, and base of the errors below."""


class NotAnExportError(WhatsAppError):
    """Raised when a file has no line that reads as a WhatsApp message.

    Attributes:
      source: The file or archive member that was read.
      line_number: The first non-blank line that does not parse, counted from 1,
        or 0 when the file is empty.
      excerpt: The start of that line, truncated.
    """

    def __init__(self, source: str, line_number: int, excerpt: str) -> None:
        if line_number == 0:
            message = f"{source} is empty, so it is not a WhatsApp chat export."
        else:
            message = (
                f"{source} is not a WhatsApp chat export: line {line_number} "
                f"({excerpt!r}) does not start with a message date and time. Upload the .txt "
                "or .zip file that WhatsApp's Export chat creates."
            )

        super().__init__(message)
        self.source = source
        self.line_number = line_number
        self.excerpt = excerpt

    def stored_text(self) -> str:
        """Return the message without the quoted line, which is chat content."""
        return str(self).replace(f" ({self.excerpt!r})", "")


class NoMessagesError(NotAnExportError):
    """Raised when message headers were found but none of them gave a message.

    Attributes:
      source: The file or archive member that was read.
      line_number: The first unparsed line, counted from 1.
      excerpt: The start of that line, truncated.
      reason: Why that line did not parse.
    """

    def __init__(self, source: str, line_number: int, excerpt: str, reason: str) -> None:
        super().__init__(source, line_number, excerpt)
        self.args = (
            f"{source} gave no messages: line {line_number} ({excerpt!r}) "
            f"did not parse because {reason}.",
        )
        self.reason = reason


class ExportEncodingError(WhatsAppError):
    """Raised when the bytes of an export do not decode in the detected encoding.

    Attributes:
      source: The file or archive member that was read.
      encoding: The codec name that failed, for example ``"utf-8"``.
      offset: The byte offset of the first invalid byte, counted from 0.
      reason: The codec's description of the problem.
    """

    def __init__(self, source: str, encoding: str, offset: int, reason: str) -> None:
        super().__init__(
            f"{source} is not valid {encoding}: {reason} at byte offset {offset}. "
            "Export the chat again from WhatsApp, or convert the file to UTF-8."
        )
        self.source = source
        self.encoding = encoding
        self.offset = offset
        self.reason = reason


class DateOrderMismatchError(WhatsAppError):
    """Raised when a forced date order cannot be the order of the file's dates.

    Attributes:
      source: The file or archive member that was read.
      date_order: The order that was forced.
      reason: What in the file rules that order out.
    """

    def __init__(self, source: str, date_order: str, reason: str) -> None:
        super().__init__(
            f"{source} cannot be read with --date-order {date_order}: {reason}. "
            "Import it without --date-order, or pass the order its dates use."
        )
        self.source = source
        self.date_order = date_order
        self.reason = reason


class InvalidDateOrderError(WhatsAppError, ValueError):
    """Raised when a date order other than ``dmy``, ``mdy`` or ``ymd`` is passed.

    Attributes:
      value: The rejected date order.
    """

    def __init__(self, value: str) -> None:
        super().__init__(
            f"Invalid date order {value!r}: expected 'dmy', 'mdy' or 'ymd'."
        )
        self.value = value


class UnsafeArchiveError(WhatsAppError):
    """Raised when a zip export holds a member that is unsafe to extract.

    Attributes:
      source: The archive that was checked.
      member: The offending member name, or ``""`` for the archive as a whole.
      reason: What makes it unsafe.
    """

    def __init__(self, source: str, member: str, reason: str) -> None:
        where = f"member {member!r} of {source}" if member else source
        super().__init__(f"Rejected {where}: {reason}.")
        self.source = source
        self.member = member
        self.reason = reason


class ArchiveLimitError(UnsafeArchiveError):
    """Raised when a zip export exceeds a size or compression-ratio limit.

    Attributes:
      source: The archive that was checked.
      member: The offending member name, or ``""`` for the archive total.
      reason: Which limit was exceeded.
      value: The measured size in bytes or compression ratio.
      limit: The configured maximum, in the same unit.
    """

    def __init__(
        self, source: str, member: str, reason: str, value: float, limit: float
    ) -> None:
        super().__init__(source, member, f"{reason} ({value:g} > {limit:g})")
        self.value = value
        self.limit = limit


class ChatNotFoundError(WhatsAppError):
    """Raised when a zip export holds no chat text file.

    Attributes:
      source: The archive that was searched.
      candidates: The ``.txt`` members found, none of which could be chosen.
    """

    def __init__(self, source: str, candidates: list[str]) -> None:
        if candidates:
            detail = f"several text files and none named like a chat: {candidates}"
        else:
            detail = "no .txt member"
        super().__init__(f"No WhatsApp chat found in {source}: {detail}.")
        self.source = source
        self.candidates = candidates
