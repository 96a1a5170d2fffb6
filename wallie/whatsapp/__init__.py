"""Parser for WhatsApp "Export chat" files, as text or as zip with media.

Typical use::

    with parse_export(path, fallback_date_order="mdy", default_region="US") as chat:
        for message in chat.messages():
            ...
        print(chat.report)
"""

from __future__ import annotations

from wallie.whatsapp.archive import ArchiveLimits, extract_member
from wallie.whatsapp.errors import (
    ArchiveLimitError,
    ChatNotFoundError,
    ExportEncodingError,
    DateOrderMismatchError,
    InvalidDateOrderError,
    NoMessagesError,
    NotAnExportError,
    UnsafeArchiveError,
    WhatsAppError,
)
from wallie.whatsapp.model import Attachment, ParsedMessage, ParseReport, UnparsedLine
from wallie.whatsapp.parser import ParsedExport, parse_export
from wallie.whatsapp.phones import normalize_phone

__all__ = [
    "ArchiveLimitError",
    "ArchiveLimits",
    "Attachment",
    "ChatNotFoundError",
    "ExportEncodingError",
    "DateOrderMismatchError",
    "InvalidDateOrderError",
    "NoMessagesError",
    "NotAnExportError",
    "ParseReport",
    "ParsedExport",
    "ParsedMessage",
    "UnparsedLine",
    "UnsafeArchiveError",
    "WhatsAppError",
    "extract_member",
    "normalize_phone",
    "parse_export",
]
