"""Queue counts and dead-letter queues of the Redis broker.

Dramatiq's Redis broker (1.x and 2.x) keeps, under its namespace, for each
queue ``Q``: a list ``Q`` of ready message ids and a hash ``Q.msgs`` of
their bodies; the same pair for the delay queue ``Q.DQ``; and for dead
letters a sorted set ``Q.XQ`` (score: time of death in milliseconds) with a
hash ``Q.XQ.msgs``.  These functions read and move messages between them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.common import dq_name, xq_name

from .errors import NotFound
from .logging import get_logger

logger = get_logger(__name__)


@dataclass(frozen=True)
class QueueStats:
    """Message counts of one queue."""

    name: str
    ready: int
    delayed: int
    dead: int


@dataclass(frozen=True)
class DeadLetter:
    """A message that used up its retries and sits in a dead-letter queue."""

    message_id: str
    queue: str
    actor: str
    died_at: datetime
    error: str
    message: dramatiq.Message[Any]


def queue_names(broker: dramatiq.Broker) -> list[str]:
    """Return the canonical names of every queue the broker knows, sorted."""
    names = {
        name
        for name in broker.get_declared_queues()
        if not name.endswith((".DQ", ".XQ"))
    }
    if isinstance(broker, RedisBroker):
        for key in broker.client.scan_iter(match=f"{broker.namespace}:*.msgs"):
            queue = key.decode().split(":", 1)[1].removesuffix(".msgs")
            if not queue.startswith("__"):
                names.add(queue.removesuffix(".XQ").removesuffix(".DQ"))

    return sorted(names)


def queue_stats(broker: dramatiq.Broker) -> list[QueueStats]:
    """Return ready, delayed and dead counts of every queue."""
    if isinstance(broker, StubBroker):
        return [_stub_stats(broker, name) for name in queue_names(broker)]

    if not isinstance(broker, RedisBroker):
        raise TypeError(f"Queue counts are not available for {type(broker).__name__}.")

    client = broker.client
    stats = []
    for name in queue_names(broker):
        key = f"{broker.namespace}:{name}"
        with client.pipeline(transaction=False) as pipe:
            pipe.llen(key)
            pipe.hlen(f"{broker.namespace}:{dq_name(name)}.msgs")
            pipe.zcard(f"{broker.namespace}:{xq_name(name)}")
            ready, delayed, dead = pipe.execute()

        stats.append(QueueStats(name, ready, delayed, dead))

    return stats


def _stub_stats(broker: StubBroker, name: str) -> QueueStats:
    ready = broker.queues[name].qsize() if name in broker.queues else 0
    delay_queue = broker.queues.get(dq_name(name))
    delayed = delay_queue.qsize() if delay_queue is not None else 0
    dead = sum(1 for message in broker.dead_letters if message.queue_name == name)
    return QueueStats(name, ready, delayed, dead)


def dead_letters(broker: RedisBroker, queue: str | None = None) -> list[DeadLetter]:
    """Return the dead letters of ``queue``, or of every queue, oldest first."""
    names = [queue] if queue else queue_names(broker)
    letters = []
    for name in names:
        zkey = f"{broker.namespace}:{xq_name(name)}"
        died = dict(broker.client.zrange(zkey, 0, -1, withscores=True))
        bodies = broker.client.hgetall(f"{zkey}.msgs")
        for raw_id, body in bodies.items():
            message = dramatiq.Message.decode(body)
            traceback = message.options.get("traceback") or ""
            error = traceback.strip().splitlines()[-1] if traceback.strip() else ""
            score = died.get(raw_id, 0.0)
            letters.append(
                DeadLetter(
                    message_id=raw_id.decode(),
                    queue=name,
                    actor=message.actor_name,
                    died_at=datetime.fromtimestamp(score / 1000, UTC),
                    error=error,
                    message=message,
                )
            )

    letters.sort(key=lambda letter: letter.died_at)
    return letters


def requeue(broker: RedisBroker, letters: list[DeadLetter]) -> list[str]:
    """Move ``letters`` back to their queues with a fresh retry budget.

    Each message keeps its id, so run history shows the new attempts under
    the same message.  Returns the ids moved.
    """
    moved = []
    for letter in letters:
        zkey = f"{broker.namespace}:{xq_name(letter.queue)}"
        removed = broker.client.hdel(f"{zkey}.msgs", letter.message_id)
        broker.client.zrem(zkey, letter.message_id)
        if not removed:
            continue

        options = {
            key: value
            for key, value in letter.message.options.items()
            if key not in ("traceback", "retries", "eta", "requeue_timestamp")
        }
        broker.enqueue(letter.message.copy(queue_name=letter.queue, options=options))
        logger.info(
            "Requeued dead message %r of actor %r.", letter.message_id, letter.actor
        )
        moved.append(letter.message_id)

    return moved


def find_dead_letter(broker: RedisBroker, message_id: str) -> DeadLetter:
    """Return the dead letter with ``message_id``.

    Raises:
      NotFound: No dead-letter queue holds that id.
    """
    for letter in dead_letters(broker):
        if letter.message_id == message_id:
            return letter

    raise NotFound("dead letter", message_id, "List them with: wallie-cli dlq list")
