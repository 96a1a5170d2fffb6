"""Request counting and rate-limit hints shared by the Gmail and Outlook clients."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

#: Wait used when a rate-limited response carries no hint, in milliseconds.
#: NOTE: an estimate. Google and Microsoft document exponential backoff but no
#: first step, so the foundation's retry policy may replace this value.
DEFAULT_BACKOFF_MS = 5_000

#: Maximum wait taken from a server hint, in milliseconds (one hour). Longer
#: hints are clamped so one bad header cannot park a mailbox for days.
MAX_RETRY_AFTER_MS = 3_600_000

#: "Retry after 2023-03-07T18:18:23.688Z" inside a Google error message.
_RETRY_AFTER_IN_MESSAGE = re.compile(
    r"retry after\s+"
    r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2}))",
    re.IGNORECASE,
)

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """Return the current time as an aware UTC datetime."""
    return datetime.now(UTC)


@dataclass
class RequestCounter:
    """Number of HTTP requests a client sent, by kind.

    A Gmail batch counts as one request, because it is one HTTP round trip.
    The counter is thread-safe, so one instance can be shared by clients.
    """

    by_kind: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, kind: str) -> None:
        """Count one request of ``kind`` (for example ``"history.list"``)."""
        with self._lock:
            self.by_kind[kind] = self.by_kind.get(kind, 0) + 1

    @property
    def total(self) -> int:
        """Number of requests of every kind."""
        with self._lock:
            return sum(self.by_kind.values())


def _clamp_ms(milliseconds: float) -> int:
    return int(min(max(milliseconds, 0), MAX_RETRY_AFTER_MS))


def parse_retry_after_header(value: str | None, *, now: datetime) -> int | None:
    """Convert a ``Retry-After`` header to milliseconds.

    Parameters:
      value: The header value, either delay-seconds or an HTTP date.
      now: The current time, used to turn an HTTP date into a delay.

    Returns:
      The delay in milliseconds, clamped to ``0 .. MAX_RETRY_AFTER_MS``, or
      ``None`` when the header is absent or cannot be parsed.
    """
    if value is None or not value.strip():
        return None

    text = value.strip()
    try:
        return _clamp_ms(float(text) * 1000)
    except ValueError:
        pass

    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None

    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)

    return _clamp_ms((moment - now).total_seconds() * 1000)


def parse_retry_after_message(message: str, *, now: datetime) -> int | None:
    """Find a "Retry after <RFC 3339 time>" hint in an error message.

    Google's per-user rate limit errors can carry the time only in the message
    text, as in "User-rate limit exceeded.  Retry after 2023-03-07T18:18:23.688Z".

    Parameters:
      message: The error message.
      now: The current time, used to turn the time into a delay.

    Returns:
      The delay in milliseconds, clamped to ``0 .. MAX_RETRY_AFTER_MS``, or
      ``None`` when the message carries no such hint.
    """
    match = _RETRY_AFTER_IN_MESSAGE.search(message)
    if match is None:
        return None

    moment = datetime.fromisoformat(match.group(1).replace("Z", "+00:00"))
    return _clamp_ms((moment - now).total_seconds() * 1000)


def header_value(headers: Mapping[str, str], name: str) -> str | None:
    """Return the header ``name`` from ``headers``, ignoring case."""
    lowered = name.lower()
    for key, value in headers.items():
        if key.lower() == lowered:
            return value

    return None
