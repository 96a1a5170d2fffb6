"""Per-user jobs at a local time of day: claim each user's run once per period.

Daily summaries, weekly reports and churn checks follow each user's own
time zone (``User.time_zone``, an IANA name), so no single cron fits them.
A frequent UTC tick calls :func:`claim_due_runs`, which picks, time zone by
time zone, the users whose local time has reached the job's time and who
have no :class:`~wallie.db.models.LocalRun` for the current period yet,
and claims one for them.

Why a 15-minute tick is enough: every time zone in use today is offset
from UTC by a whole number of quarter hours (``+05:30`` Asia/Kolkata,
``+05:45`` Asia/Kathmandu, ``+10:30`` Australia/Lord_Howe in winter), so a
tick on the UTC quarter hours lands on local 08:00 exactly.  A zone with
another offset would get its run at the first tick after the time.

Why DST and moves are safe: the period is the local date (or ISO week) at
the time of the tick, and ``(user, job, period)`` is unique.  A DST change
shifts the UTC instant of local 08:00 but not the date; a user who moves
to another zone keeps the claims already made for the dates they cover,
so at most one run per local date (or week) happens, whichever zone it
was in.  A tick that comes late (the scheduler was down) still claims the
run while the local date (or, for a weekly job, the ISO week) is the same.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import peewee

from ..db.fields import utcnow
from ..db.models import LocalRun, User
from ..logging import get_logger

logger = get_logger(__name__)

#: Rows per insert when claiming runs.
CLAIM_BATCH = 500


@dataclass(frozen=True)
class LocalJob:
    """A job that runs once per local day, or once per ISO week, for each user.

    ``weekday`` is Monday 0 to Sunday 6 and set for weekly jobs only.
    """

    name: str
    at: time
    weekday: int | None = None

    @property
    def weekly(self) -> bool:
        """True when the job runs once per ISO week."""
        return self.weekday is not None

    def describe(self) -> str:
        """Return when the job runs, such as ``Mon 09:00 local``."""
        when = self.at.strftime("%H:%M")
        if self.weekday is None:
            return f"daily {when} local"

        day = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")[self.weekday]
        return f"{day} {when} local"


#: The per-user jobs, in the order they run on a day.
CHURN_DETECTION = LocalJob("client_churn_detection", time(7, 0))
DAILY_SUMMARY = LocalJob("daily_summary", time(8, 0))
WEEKLY_REPORT = LocalJob("weekly_report", time(9, 0), weekday=0)
LOCAL_JOBS: tuple[LocalJob, ...] = (CHURN_DETECTION, DAILY_SUMMARY, WEEKLY_REPORT)


@dataclass(frozen=True)
class Claim:
    """One user's run of one job for one period, claimed by this tick."""

    job: str
    user_id: int
    period: str


def iso_week(day: date) -> str:
    """Return the ISO week of ``day``, such as ``2026-W09``."""
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def zone_of(name: str) -> ZoneInfo:
    """Return the time zone called ``name``, or UTC when the name is not valid."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def due_period(job: LocalJob, local_now: datetime) -> str | None:
    """Return the period whose run is due at ``local_now``, or None before its time.

    A daily job is due from its time until the end of the local day; a
    weekly job from its weekday and time until the end of the ISO week.
    """
    if job.weekday is None:
        if local_now.time() < job.at:
            return None

        return local_now.date().isoformat()

    weekday = local_now.weekday()
    if weekday < job.weekday or (weekday == job.weekday and local_now.time() < job.at):
        return None

    return iso_week(local_now.date())


def claim_due_runs(now: datetime | None = None, jobs: tuple[LocalJob, ...] = LOCAL_JOBS) -> list[Claim]:
    """Claim every user's due run of ``jobs`` that has not been claimed yet.

    Returns the claims made by this call; a run claimed earlier (by an
    earlier tick or a concurrent one) is never returned twice.
    """
    now = now or utcnow()
    token = uuid.uuid4().hex
    zones = [row.time_zone for row in User.select(User.time_zone).distinct()]
    for zone_name in zones:
        zone = zone_of(zone_name)
        if zone.key != zone_name:
            logger.warning("Users with time zone %r are scheduled in UTC: the name is not valid.", zone_name)

        local_now = now.astimezone(zone)
        for job in jobs:
            period = due_period(job, local_now)
            if period is not None:
                _claim_zone(zone_name, job.name, period, token, now)

    query = LocalRun.select(LocalRun.job, LocalRun.user, LocalRun.period).where(LocalRun.claim == token)
    claims = [Claim(row.job, row.user_id, row.period) for row in query]
    if claims:
        logger.info("Claimed %d per-user runs at %s.", len(claims), now.isoformat())

    return claims


def _claim_zone(zone_name: str, job: str, period: str, token: str, now: datetime) -> None:
    """Insert a run for every user in ``zone_name`` without one for ``period``."""
    already = LocalRun.select(LocalRun.id).where(
        (LocalRun.user == User.id) & (LocalRun.job == job) & (LocalRun.period == period)
    )
    users = User.select(User.id).where((User.time_zone == zone_name) & ~peewee.fn.EXISTS(already))
    user_ids = [user.id for user in users]
    for start in range(0, len(user_ids), CLAIM_BATCH):
        rows = [
            {
                "user": user_id,
                "job": job,
                "period": period,
                "claim": token,
                "time_zone": zone_name,
                "created_at": now,
            }
            for user_id in user_ids[start : start + CLAIM_BATCH]
        ]
        LocalRun.insert_many(rows).on_conflict_ignore().execute()


#: Claims older than this are deleted, in days; longer than the longest
#: period (an ISO week) plus the largest jump a time zone change can make.
KEEP_DAYS = 14


def prune_local_runs(now: datetime | None = None) -> int:
    """Delete claims older than :data:`KEEP_DAYS`; their periods can no longer come due."""
    cutoff = (now or utcnow()) - timedelta(days=KEEP_DAYS)
    return LocalRun.delete().where(LocalRun.created_at < cutoff).execute()
