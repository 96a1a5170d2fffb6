"""Safety limiter: cost warnings, runaway detection and paid-work pauses.

The ``safety_limiter`` actor runs :func:`run_safety_checks` every five
minutes.  It sends the 80% and 100% cost notices, pauses the paid work of a
user whose usage suddenly runs far above their usual rate, and lifts pauses
that have passed.

Usage summaries are not rolled up into a table of their own, because every
usage query of one user reads ``usage_record`` through its ``(user_id,
created_at)`` index.  A user at the largest plan ceiling (150 dollars) at
about 0.002 dollars a call writes some 75,000 rows a month, few enough to
sum on each request.  The deployment-wide summary reads every row of the
month through the ``created_at`` index.  Only ``wallie-cli usage`` without
``--user`` runs it, and the glass ceiling caches its total for 30 seconds.
NOTE: the row counts are estimates; add a rollup table when the
deployment-wide sum gets slow.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

import peewee

from .db.fields import utcnow
from .db.models import AuditLog, OutboxItem, UsageRecord, User
from .limits import limit_for
from .logging import get_logger
from .notify import add_notification
from .usage import month_cost, month_start, warn_about_cost

logger = get_logger(__name__)

#: Length of the recent window compared against the user's usual rate, in hours.
RECENT_HOURS = 1

#: Length of the history that sets a user's usual hourly rate, in days.
BASELINE_DAYS = 7

#: How many times the usual hourly rate counts as a runaway (an estimate).
RUNAWAY_FACTOR = 10

#: Cost in the recent window below which a user is never a runaway, in
#: dollars (an estimate: about 250 small model calls).
RUNAWAY_MIN_COST_USD = Decimal("0.50")

#: Provider calls in the recent window below which a user is never a
#: runaway, in calls (an estimate: a first mailbox sync stays below it).
RUNAWAY_MIN_CALLS = 200

#: How long a runaway's paid work stays paused, in hours.
RUNAWAY_PAUSE_HOURS = 6

#: Prefix of ``User.pause_reason`` for a runaway pause.
PAUSE_RUNAWAY = "runaway"

#: Prefix of ``User.pause_reason`` for a pause at the cost ceiling; such a
#: pause ends when a new month starts or the ceiling is raised.
PAUSE_CEILING = "ceiling"

#: Prefix of ``User.pause_reason`` for an operator's pause.
PAUSE_OPERATOR = "operator"

#: Audit log action of a runaway pause; its time marks where the next
#: episode's usage starts to count.
RUNAWAY_ACTION = "usage.runaway_pause"


@dataclass(frozen=True)
class Rate:
    """Usage of one user over a period: provider calls and dollars."""

    calls: int
    cost_usd: Decimal


@dataclass(frozen=True)
class Runaway:
    """A user whose recent usage is far above their usual hourly rate."""

    user_id: int
    since: datetime
    recent: Rate
    hourly_baseline: Rate


@dataclass(frozen=True)
class SafetyReport:
    """Outcome of one safety run: users warned, paused and resumed, and outbox items to deliver."""

    warned_users: int
    paused_user_ids: list[int]
    resumed_user_ids: list[int]
    outbox_item_ids: list[int]


def run_safety_checks(now: datetime | None = None) -> SafetyReport:
    """Lift passed pauses, warn about costs, and pause runaway users.

    Returns:
      The counts and the ids of outbox items still to deliver.
    """
    now = now or utcnow()
    resumed = clear_passed_pauses(now)
    item_ids, warned = send_cost_warnings(now)
    paused = []
    for runaway in find_runaways(now):
        item_id = pause_runaway(runaway, now)
        if item_id is not None:
            paused.append(runaway.user_id)
            item_ids.append(item_id)

    return SafetyReport(warned, paused, resumed, _pending(item_ids))


def send_cost_warnings(now: datetime | None = None) -> tuple[list[int], int]:
    """Queue the 80% and 100% notices of every user with usage this month.

    Returns:
      The outbox item ids (new or already queued) and the number of users checked.
    """
    start = month_start(now)
    user_ids = (
        UsageRecord.select(UsageRecord.user)
        .where((UsageRecord.created_at >= start) & UsageRecord.user.is_null(False))
        .distinct()
    )
    item_ids: list[int] = []
    users = list(User.select().where(User.id.in_(user_ids)).order_by(User.id))
    for user in users:
        item_ids += warn_about_cost(user)

    return item_ids, len(users)


def usage_by_user(since: datetime, until: datetime) -> dict[int, Rate]:
    """Return the calls and cost of each user with usage in ``[since, until)``."""
    query = (
        UsageRecord.select(
            UsageRecord.user,
            peewee.fn.COALESCE(peewee.fn.SUM(UsageRecord.calls), 0).alias("calls"),
            peewee.fn.COALESCE(peewee.fn.SUM(UsageRecord.cost_usd), 0).alias("cost"),
        )
        .where(
            (UsageRecord.created_at >= since)
            & (UsageRecord.created_at < until)
            & UsageRecord.user.is_null(False)
        )
        .group_by(UsageRecord.user)
        .tuples()
    )
    return {
        user_id: Rate(int(calls or 0), Decimal(str(cost or 0)))
        for user_id, calls, cost in query
    }


def find_runaways(now: datetime | None = None) -> list[Runaway]:
    """Return the users whose last hour is far above their usual hourly rate.

    A user is a runaway when their calls or cost since the window start are
    over the floor (:data:`RUNAWAY_MIN_CALLS`, :data:`RUNAWAY_MIN_COST_USD`)
    and more than :data:`RUNAWAY_FACTOR` times their hourly average over the
    :data:`BASELINE_DAYS` before.  The window starts an hour ago, or at the
    user's last runaway pause if that is later, so usage that caused one
    pause never counts towards another.  Users whose paid work is paused now
    are left out.
    """
    now = now or utcnow()
    window_start = now - timedelta(hours=RECENT_HOURS)
    found = []
    for user_id, recent in usage_by_user(window_start, now).items():
        if not _over_floor(recent):
            continue

        user = User.get_or_none(User.id == user_id)
        if user is None or _is_paused(user, now):
            continue

        since = max(window_start, _last_runaway_pause(user_id) or window_start)
        if since > window_start:
            recent = usage_by_user(since, now).get(user_id, Rate(0, Decimal(0)))
            if not _over_floor(recent):
                continue

        baseline = _hourly_baseline(user_id, window_start)
        if _is_runaway(recent, baseline):
            found.append(Runaway(user_id, since, recent, baseline))

    return found


def pause_runaway(runaway: Runaway, now: datetime | None = None) -> int | None:
    """Pause the runaway's paid work for :data:`RUNAWAY_PAUSE_HOURS` and notify them.

    The update only applies to a user who is not paused, so two safety
    runs at once pause and notify once.

    Returns:
      The outbox item id of the notice, or None when the user was paused already.
    """
    now = now or utcnow()
    until = now + timedelta(hours=RUNAWAY_PAUSE_HOURS)
    reason = (
        f"{PAUSE_RUNAWAY}: {runaway.recent.calls} calls and ${runaway.recent.cost_usd:.2f} "
        f"since {runaway.since:%Y-%m-%d %H:%M} UTC, over {RUNAWAY_FACTOR} times the usual rate"
    )
    database = User._meta.database
    with database.atomic():
        updated = (
            User.update(paid_work_paused_until=until, pause_reason=reason[:300])
            .where((User.id == runaway.user_id) & _not_paused(now))
            .execute()
        )
        if not updated:
            return None

        AuditLog.create(
            action=RUNAWAY_ACTION,
            operator="safety_limiter",
            created_at=now,
            user_id=runaway.user_id,
            target=f"user:{runaway.user_id}",
            details=_numbers(runaway, until),
        )
        item = _queue_runaway_notice(runaway, until, now)

    logger.warning(
        "Paused paid work of user %r until %s: %d calls and $%s since %s, "
        "against an hourly average of %s calls and $%s.",
        runaway.user_id, until.isoformat(), runaway.recent.calls, runaway.recent.cost_usd,
        runaway.since.isoformat(), runaway.hourly_baseline.calls,
        runaway.hourly_baseline.cost_usd,
    )
    return item.id


def clear_passed_pauses(now: datetime | None = None) -> list[int]:
    """Lift pauses that have ended, and ceiling pauses of users now under their ceiling.

    A ceiling pause lasts until the month's spend is under the user's
    ceiling again: at the start of a new month, or when an operator raises
    the ceiling.

    Returns:
      The ids of the users whose pause was lifted.
    """
    now = now or utcnow()
    paused = User.select().where(User.paid_work_paused_until.is_null(False))
    resumed = []
    for user in paused:
        if user.paid_work_paused_until <= now or _ceiling_lifted(user, now):
            resume(user)
            resumed.append(user.id)
            logger.info("Lifted the pause of user %r's paid work.", user.id)

    return resumed


def pause(user: User, hours: float, reason: str, *, operator: str = "") -> datetime:
    """Pause ``user``'s paid work for ``hours`` hours; record it in the audit log.

    Returns:
      The end of the pause.

    Raises:
      ValueError: ``hours`` is not more than 0.
    """
    if not hours > 0:
        raise ValueError(f"hours must be more than 0 (got {hours}).")

    until = utcnow() + timedelta(hours=hours)
    with User._meta.database.atomic():
        User.update(paid_work_paused_until=until, pause_reason=reason[:300]).where(
            User.id == user.id
        ).execute()
        AuditLog.create(
            action="usage.pause",
            operator=operator,
            user_id=user.id,
            target=f"user:{user.id}",
            details={"until": until.isoformat(), "hours": hours},
        )

    return until


def resume(user: User, *, operator: str | None = None) -> bool:
    """Lift ``user``'s pause; with an ``operator``, record it in the audit log.

    Returns:
      True when the user was paused.
    """
    with User._meta.database.atomic():
        updated = (
            User.update(paid_work_paused_until=None, pause_reason="")
            .where((User.id == user.id) & User.paid_work_paused_until.is_null(False))
            .execute()
        )
        if operator is not None:
            AuditLog.create(
                action="usage.resume",
                operator=operator,
                user_id=user.id,
                target=f"user:{user.id}",
                details={"was_paused": bool(updated)},
            )

    return bool(updated)


def _over_floor(rate: Rate) -> bool:
    return rate.calls > RUNAWAY_MIN_CALLS or rate.cost_usd > RUNAWAY_MIN_COST_USD


def _is_runaway(recent: Rate, baseline: Rate) -> bool:
    calls = recent.calls > RUNAWAY_MIN_CALLS and recent.calls > RUNAWAY_FACTOR * baseline.calls
    cost = (
        recent.cost_usd > RUNAWAY_MIN_COST_USD
        and recent.cost_usd > RUNAWAY_FACTOR * baseline.cost_usd
    )
    return calls or cost


def _hourly_baseline(user_id: int, until: datetime) -> Rate:
    # A user with less history gets a lower average, which the floors offset.
    hours = BASELINE_DAYS * 24
    since = until - timedelta(hours=hours)
    total = usage_by_user(since, until).get(user_id, Rate(0, Decimal(0)))
    return Rate(round(total.calls / hours), total.cost_usd / hours)


def _is_paused(user: User, now: datetime) -> bool:
    return user.paid_work_paused_until is not None and user.paid_work_paused_until > now


def _not_paused(now: datetime) -> peewee.Expression:
    return User.paid_work_paused_until.is_null() | (User.paid_work_paused_until <= now)


def _last_runaway_pause(user_id: int) -> datetime | None:
    latest = (
        AuditLog.select(AuditLog.created_at)
        .where((AuditLog.action == RUNAWAY_ACTION) & (AuditLog.user_id == user_id))
        .order_by(AuditLog.created_at.desc())
        .first()
    )
    return latest.created_at if latest is not None else None


def _ceiling_lifted(user: User, now: datetime) -> bool:
    if not user.pause_reason.startswith(PAUSE_CEILING):
        return False

    return month_cost(user.id, now) < limit_for(user, "cost_ceiling_usd")


def _numbers(runaway: Runaway, until: datetime) -> dict[str, object]:
    return {
        "since": runaway.since.isoformat(),
        "until": until.isoformat(),
        "calls": runaway.recent.calls,
        "cost_usd": str(runaway.recent.cost_usd),
        "hourly_calls": runaway.hourly_baseline.calls,
        "hourly_cost_usd": str(runaway.hourly_baseline.cost_usd.quantize(Decimal("0.000001"))),
    }


def _queue_runaway_notice(runaway: Runaway, until: datetime, now: datetime) -> OutboxItem:
    user = User.get_by_id(runaway.user_id)
    hour = now.strftime("%Y-%m-%dT%H")
    body = (
        f"Wallie made {runaway.recent.calls} provider calls costing "
        f"${runaway.recent.cost_usd:.2f} for you in the last hour, far above your "
        f"usual rate, so AI work is paused until {until:%Y-%m-%d %H:%M} UTC. "
        "Contact support if this was expected."
    )
    return add_notification(
        user,
        f"runaway:{runaway.user_id}:{hour}",
        "runaway_pause",
        "Wallie paused AI work on your account",
        body,
        _numbers(runaway, until),
    )


def _pending(item_ids: list[int]) -> list[int]:
    if not item_ids:
        return []

    query = OutboxItem.select(OutboxItem.id).where(
        OutboxItem.id.in_(item_ids) & (OutboxItem.status == "pending")
    )
    return sorted({item.id for item in query})
