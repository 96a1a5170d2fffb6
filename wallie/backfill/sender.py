"""Enqueue many messages at once: one Redis transaction per batch.

Dramatiq's :meth:`RedisBroker.enqueue` runs its ``dispatch`` script once
per message, one round trip each.  :func:`enqueue_batch` writes a whole
batch the way that script's ``enqueue`` command does: the message bodies go
into the hash ``{namespace}:{queue}.msgs`` under their Redis ids, and the
ids onto the list ``{namespace}:{queue}``.  The same ``MULTI``/``EXEC``
transaction adds the batch's target keys to the backfill's sent set.  Redis
applies a transaction whole or not at all, so after a crash a target is in
the sent set exactly when its message is in the queue.

Run history records a backfill message when a worker starts it, not when
it is queued: writing 100,000 ``enqueued`` rows cut the send rate by about
three times.  The :class:`~wallie.db.models.Backfill` row counts what was
sent.

Note:
  The key layout is Dramatiq 2.2's (``wallie.queues`` reads the same
  keys); a Dramatiq upgrade must re-check it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import uuid4

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import Middleware

from ..middleware.run_history import RunHistory

#: Life of a backfill's sent set in Redis, in seconds; a backfill resumed
#: later than this falls back to its cursor alone.
SENT_SET_TTL_S = 30 * 86_400


def sent_set_key(backfill_id: int) -> str:
    """Return the Redis key of the set of target keys a backfill has sent."""
    return f"wallie:backfill:{backfill_id}:sent"


def already_sent(client: redis.Redis, backfill_id: int, keys: Sequence[str]) -> set[str]:
    """Return which of ``keys`` are in the backfill's sent set."""
    if not keys:
        return set()

    flags = client.smismember(sent_set_key(backfill_id), list(keys))
    return {key for key, flag in zip(keys, flags, strict=True) if flag}


def _hooks(broker: dramatiq.Broker, hook: str) -> list[Any]:
    """Return the middleware methods for ``hook`` that do something, run history excepted."""
    hooks = []
    for middleware in broker.middleware:
        method = getattr(type(middleware), hook, None)
        if isinstance(middleware, RunHistory) or method is getattr(Middleware, hook):
            continue

        hooks.append(getattr(middleware, hook))

    return hooks


def enqueue_batch(
    broker: dramatiq.Broker,
    messages: Sequence[dramatiq.Message[Any]],
    *,
    backfill_id: int,
    keys: Sequence[str],
) -> None:
    """Enqueue ``messages`` and record their target ``keys`` as sent.

    On Redis both happen in one transaction.  On the in-process broker the
    messages are enqueued one by one, with run history, and nothing is
    recorded.
    """
    if not isinstance(broker, RedisBroker):
        for message in messages:
            broker.enqueue(message)

        return

    if not messages:
        return

    prepared = [message.copy(options={"redis_message_id": str(uuid4())}) for message in messages]
    before, after = _hooks(broker, "before_enqueue"), _hooks(broker, "after_enqueue")
    by_queue: dict[str, dict[str, bytes]] = {}
    for message in prepared:
        for hook in before:
            hook(broker, message, None)

        bodies = by_queue.setdefault(message.queue_name, {})
        bodies[message.options["redis_message_id"]] = message.encode()

    with broker.client.pipeline(transaction=True) as pipeline:
        for queue_name, bodies in by_queue.items():
            queue_key = f"{broker.namespace}:{queue_name}"
            pipeline.hset(f"{queue_key}.msgs", mapping=bodies)
            pipeline.rpush(queue_key, *bodies)

        if keys:
            pipeline.sadd(sent_set_key(backfill_id), *keys)
            pipeline.expire(sent_set_key(backfill_id), SENT_SET_TTL_S)

        pipeline.execute()

    for message in prepared:
        for hook in after:
            hook(broker, message, None)
