"""Usage records of paid and rate-limited calls, and the sums the limits need."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from decimal import Decimal

import peewee

from .db.fields import utcnow
from .db.models import UsageRecord, User
from .logging import get_logger
from .notify import add_notification

logger = get_logger(__name__)

#: Shares of the monthly cost ceiling at which the user gets a notice, once each.
WARNING_SHARES = (Decimal("0.8"), Decimal("1.0"))

#: How long the deployment's month total is reused before it is summed again,
#: in seconds; the sum reads every usage row of the month.
DEPLOYMENT_TOTAL_CACHE_S = 30.0

_deployment_cache: dict[str, tuple[float, Decimal]] = {}
_cache_lock = threading.Lock()


def month_start(moment: datetime | None = None) -> datetime:
    """Return the first instant of ``moment``'s calendar month, in UTC."""
    moment = (moment or utcnow()).astimezone(UTC)
    return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def next_month_start(moment: datetime | None = None) -> datetime:
    """Return the first instant of the calendar month after ``moment``'s, in UTC."""
    start = month_start(moment)
    if start.month == 12:
        return start.replace(year=start.year + 1, month=1)

    return start.replace(month=start.month + 1)


def record_usage(
    *,
    user_id: int | None,
    provider: str,
    actor: str = "",
    operation: str = "",
    message_id: str = "",
    calls: int = 1,
    tokens_in: int = 0,
    tokens_out: int = 0,
    audio_seconds: int = 0,
    cost_usd: Decimal = Decimal(0),
) -> UsageRecord:
    """Write one usage record and tell the user when a ceiling share is crossed."""
    record = UsageRecord.create(
        user=user_id,
        provider=provider,
        actor=actor,
        operation=operation,
        message_id=message_id,
        calls=calls,
        tokens_in=tokens_in,
        tokens_out=tokens_out,
        audio_seconds=audio_seconds,
        cost_usd=cost_usd,
    )
    if user_id is not None and cost_usd > 0:
        warn_about_cost(User.get_by_id(user_id))

    return record


def month_cost(user_id: int | None, moment: datetime | None = None) -> Decimal:
    """Return the dollars spent this month by ``user_id``, or by everyone for ``None``."""
    query = UsageRecord.select(peewee.fn.COALESCE(peewee.fn.SUM(UsageRecord.cost_usd), 0))
    query = query.where(UsageRecord.created_at >= month_start(moment))
    if user_id is not None:
        query = query.where(UsageRecord.user == user_id)

    return Decimal(str(query.scalar() or 0))


def deployment_month_cost() -> Decimal:
    """Return the whole deployment's spend this month, summed at most every 30 s."""
    key = month_start().isoformat()
    with _cache_lock:
        cached = _deployment_cache.get(key)
        if cached is not None and time.monotonic() - cached[0] < DEPLOYMENT_TOTAL_CACHE_S:
            return cached[1]

    total = month_cost(None)
    with _cache_lock:
        _deployment_cache.clear()
        _deployment_cache[key] = (time.monotonic(), total)

    return total


def forget_cached_totals() -> None:
    """Drop the cached deployment total, so the next check sums again."""
    with _cache_lock:
        _deployment_cache.clear()


def month_tokens(user_id: int, moment: datetime | None = None) -> int:
    """Return the tokens (in and out) used this month by ``user_id``."""
    total = (
        UsageRecord.select(
            peewee.fn.COALESCE(peewee.fn.SUM(UsageRecord.tokens_in + UsageRecord.tokens_out), 0)
        )
        .where((UsageRecord.user == user_id) & (UsageRecord.created_at >= month_start(moment)))
        .scalar()
    )
    return int(total or 0)


def month_audio_minutes(user_id: int, moment: datetime | None = None) -> Decimal:
    """Return the minutes of audio transcribed this month for ``user_id``."""
    seconds = (
        UsageRecord.select(peewee.fn.COALESCE(peewee.fn.SUM(UsageRecord.audio_seconds), 0))
        .where((UsageRecord.user == user_id) & (UsageRecord.created_at >= month_start(moment)))
        .scalar()
    )
    return Decimal(int(seconds or 0)) / 60


def warn_about_cost(user: User) -> list[int]:
    """Queue the 80% and 100% notices the user has earned this month; return new item ids.

    Each notice has an outbox key per user, month and share, so it is sent
    once however often this runs.
    """
    from .limits import limit_for

    ceiling = limit_for(user, "cost_ceiling_usd")
    if ceiling <= 0:
        return []

    spent = month_cost(user.id)
    month = month_start().strftime("%Y-%m")
    created = []
    for share in WARNING_SHARES:
        if spent < ceiling * share:
            continue

        percent = int(share * 100)
        item = add_notification(
            user,
            f"cost-ceiling:{user.id}:{month}:{percent}",
            "cost_ceiling",
            f"You have used {percent}% of this month's AI budget",
            _warning_text(percent, spent, ceiling),
            {"percent": percent, "spent_usd": str(spent), "ceiling_usd": str(ceiling)},
        )
        created.append(item.id)
        logger.info("Queued the %d%% cost notice for user %r.", percent, user.id)

    return created


def _warning_text(percent: int, spent: Decimal, ceiling: Decimal) -> str:
    if percent >= 100:
        return (
            f"Wallie has spent ${spent:.2f} of your ${ceiling:.2f} monthly budget. "
            "AI analysis switches to the offline analyzer until next month or until "
            "your limit is raised."
        )

    return f"Wallie has spent ${spent:.2f} of your ${ceiling:.2f} monthly budget."
