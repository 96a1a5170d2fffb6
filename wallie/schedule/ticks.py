"""Claim each cron tick once, whichever scheduler process gets there first.

A tick is claimed under its actor name and its UTC minute.  With
``REDIS_URL`` set, the claim is first ``SET wallie:tick:{actor}:{tick} 1 NX
EX ...`` in Redis, which turns away the other schedulers without touching
the database.  The winner (and, in the embedded default, the only
scheduler) then inserts a :class:`~wallie.db.models.ScheduleTick` row whose
``(actor, tick_at)`` is unique: the database decides, so a Redis that lost
its keys (restart without persistence, ``FLUSHDB``) still cannot let a
tick out twice.  The rows also tell a starting scheduler which tick each
actor last had, so it can catch up what it missed.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import peewee
import redis

from ..db.fields import utcnow
from ..db.models import ScheduleTick
from ..logging import get_logger

logger = get_logger(__name__)

#: Prefix of the tick keys in Redis.
KEY_PREFIX = "wallie:tick:"

#: Lifetime of a tick key in Redis, in seconds; longer than any clock skew
#: between schedulers, after which the database row alone guards the tick.
KEY_TTL_S = 2 * 86_400

#: Tick rows older than this are deleted, except each actor's newest, in days.
KEEP_DAYS = 7


def tick_key(actor_name: str, tick_at: datetime) -> str:
    """Return the Redis key of one tick, such as ``wallie:tick:outbox_sweep:2026-03-08T10:00:00+00:00``."""
    return f"{KEY_PREFIX}{actor_name}:{tick_at.isoformat()}"


def claim_tick(
    actor_name: str,
    tick_at: datetime,
    *,
    redis_client: redis.Redis | None = None,
    catch_up: bool = False,
) -> ScheduleTick | None:
    """Claim the tick ``tick_at`` of ``actor_name``; return its row, or None if taken.

    Parameters:
      actor_name: The periodic actor.
      tick_at: The tick's UTC minute.
      redis_client: The scheduler's own Redis connection, or None in the
        embedded default.
      catch_up: Mark the tick as one sent late, after scheduler downtime.
    """
    if redis_client is not None:
        claimed = redis_client.set(tick_key(actor_name, tick_at), 1, nx=True, ex=KEY_TTL_S)
        if not claimed:
            return None

    database = ScheduleTick._meta.database
    try:
        with database.atomic():
            return ScheduleTick.create(actor=actor_name, tick_at=tick_at, catch_up=catch_up)
    except peewee.IntegrityError:
        logger.info("Tick %s of %s was already claimed in the database.", tick_at, actor_name)
        return None


def mark_sent(tick: ScheduleTick, message_id: str) -> None:
    """Record that the message of ``tick`` was enqueued."""
    ScheduleTick.update(sent_at=utcnow(), message_id=message_id).where(
        ScheduleTick.id == tick.id
    ).execute()


def release_tick(tick: ScheduleTick, *, redis_client: redis.Redis | None = None) -> None:
    """Undo the claim of ``tick`` after its message could not be sent."""
    ScheduleTick.delete().where(ScheduleTick.id == tick.id).execute()
    if redis_client is not None:
        redis_client.delete(tick_key(tick.actor, tick.tick_at))


def last_ticks(actor_names: list[str]) -> dict[str, datetime]:
    """Return the newest claimed tick of each actor that has one."""
    if not actor_names:
        return {}

    latest = peewee.fn.MAX(ScheduleTick.tick_at)
    query = (
        ScheduleTick.select(ScheduleTick.actor, latest.alias("latest"))
        .where(ScheduleTick.actor.in_(actor_names))
        .group_by(ScheduleTick.actor)
    )
    field = ScheduleTick.tick_at
    return {row.actor: field.python_value(row.latest) for row in query}


def prune_ticks(now: datetime | None = None) -> int:
    """Delete tick rows older than :data:`KEEP_DAYS`, keeping each actor's newest."""
    cutoff = (now or utcnow()) - timedelta(days=KEEP_DAYS)
    newest = ScheduleTick.select(peewee.fn.MAX(ScheduleTick.id)).group_by(ScheduleTick.actor)
    return (
        ScheduleTick.delete()
        .where((ScheduleTick.tick_at < cutoff) & ScheduleTick.id.not_in(newest))
        .execute()
    )
