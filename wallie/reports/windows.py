"""Local days and weeks as UTC ranges, and score thresholds the reports share."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from ..db.models import Message
from ..schedule.local import zone_of
from ..settings import get_settings

def hot_score() -> int:
    """Return the lead score (0 to 100) from which a contact is hot.

    It is ``WALLIE_HOT_LEAD_THRESHOLD``, the threshold of hot-lead notices,
    so the reports and the notices agree.
    """
    return get_settings().hot_lead_threshold


@dataclass(frozen=True)
class Window:
    """A half-open UTC range ``[start, end)``."""

    start: datetime
    end: datetime


def local_midnight(day: date, zone_name: str) -> datetime:
    """Return the UTC instant at which local ``day`` starts in ``zone_name``."""
    return datetime.combine(day, time(0), tzinfo=zone_of(zone_name)).astimezone(UTC)


def local_day(day: date, zone_name: str) -> Window:
    """Return local ``day`` in ``zone_name`` as UTC; 23 or 25 hours on DST days."""
    return Window(local_midnight(day, zone_name), local_midnight(day + timedelta(days=1), zone_name))


def local_week(monday: date, zone_name: str) -> Window:
    """Return the local week starting on ``monday`` as a UTC range."""
    return Window(local_midnight(monday, zone_name), local_midnight(monday + timedelta(days=7), zone_name))


def parse_iso_week(week: str) -> date:
    """Return the Monday of ISO week ``week`` (``2026-W49``).

    Raises:
      ValueError: ``week`` is not of the form ``YYYY-Www``.
    """
    try:
        year, number = week.upper().split("-W")
        return date.fromisocalendar(int(year), int(number), 1)
    except ValueError:
        raise ValueError(f"{week!r} is not an ISO week; use YYYY-Www such as 2026-W49.") from None


def as_utc(value: Any) -> datetime | None:
    """Return a timestamp read from an aggregate (``MAX(sent_at)``) as aware UTC.

    SQLite returns aggregates of timestamps as text and PostgreSQL as naive
    datetimes; the column's own converter handles both.
    """
    if value is None:
        return None

    return Message.sent_at.python_value(value)


def chunks(items: list[Any], size: int) -> list[list[Any]]:
    """Split ``items`` into lists of at most ``size``."""
    return [items[start : start + size] for start in range(0, len(items), size)]
