"""Cron arithmetic in UTC over periodiq's :class:`~periodiq.CronSpec`.

periodiq evaluates a spec on ``pendulum.now()``, the host's local time, so a
``0 8 * * *`` actor runs at a different UTC hour in summer and winter and a
DST change can skip or repeat a run.  Wallie reads every cron in UTC, which
has no DST, and computes ticks here.  periodiq 0.14's ``CronSpec.validate``
also compares ISO weekdays (Sunday is 7) with cron weekdays (Sunday is 0),
so :func:`matches` reads the expanded fields itself and accepts 0 and 7 for
Sunday.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from periodiq import CronSpec

#: How far :func:`next_tick` and :func:`previous_tick` search, in days; a
#: spec with no tick in that span (``0 0 30 2 *``) never runs.
SEARCH_DAYS = 366 * 4

_MINUTE = timedelta(minutes=1)


def floor_minute(moment: datetime) -> datetime:
    """Return ``moment`` in UTC with seconds and microseconds dropped."""
    return moment.astimezone(UTC).replace(second=0, microsecond=0)


def _day_matches(spec: CronSpec, moment: datetime) -> bool:
    if moment.month not in spec.month:
        return False

    weekday = moment.isoweekday() % 7
    dow_ok = weekday in spec.dow or (weekday == 0 and 7 in spec.dow)
    dom_ok = moment.day in spec.dom
    if spec.is_dom_restricted and spec.is_dow_restricted:
        # Cron's rule: when both fields are restricted, either may match.
        return dom_ok or dow_ok

    return dom_ok and dow_ok


def matches(spec: CronSpec, moment: datetime) -> bool:
    """Return whether the UTC minute of ``moment`` is a tick of ``spec``."""
    moment = moment.astimezone(UTC)
    return (
        moment.minute in spec.minute
        and moment.hour in spec.hour
        and _day_matches(spec, moment)
    )


def next_tick(spec: CronSpec, after: datetime) -> datetime | None:
    """Return the first tick of ``spec`` strictly after ``after``, in UTC.

    Returns None when no tick falls in the next :data:`SEARCH_DAYS` days.
    """
    moment = floor_minute(after) + _MINUTE
    limit = moment + timedelta(days=SEARCH_DAYS)
    while moment < limit:
        if not _day_matches(spec, moment):
            moment = moment.replace(hour=0, minute=0) + timedelta(days=1)
        elif moment.hour not in spec.hour:
            moment = moment.replace(minute=0) + timedelta(hours=1)
        elif moment.minute not in spec.minute:
            moment += _MINUTE
        else:
            return moment

    return None


def previous_tick(spec: CronSpec, at: datetime) -> datetime | None:
    """Return the last tick of ``spec`` at or before ``at``, in UTC.

    Returns None when no tick falls in the last :data:`SEARCH_DAYS` days.
    """
    moment = floor_minute(at)
    limit = moment - timedelta(days=SEARCH_DAYS)
    while moment > limit:
        if not _day_matches(spec, moment):
            moment = moment.replace(hour=23, minute=59) - timedelta(days=1)
        elif moment.hour not in spec.hour:
            moment = moment.replace(minute=59) - timedelta(hours=1)
        elif moment.minute not in spec.minute:
            moment -= _MINUTE
        else:
            return moment

    return None
