"""Queue counts and dead-letter queues of the Redis broker.

Dramatiq's Redis broker (1.x and 2.x) keeps, under its namespace, for each
queue ``Q``: a list ``Q`` of ready message ids and a hash ``Q.msgs`` of
their bodies; the same pair for the delay queue ``Q.DQ``; and for dead
letters a sorted set ``Q.XQ`` (score: time of death in milliseconds) with a
hash ``Q.XQ.msgs``.  Those keys hold the broker's own ``redis_message_id``
option, not the Dramatiq message id.  These functions read and move
messages between them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.common import dq_name, xq_name
from dramatiq.middleware import Retries

from .db.models import JobRun
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
    redis_id: str
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
            score = died.get(raw_id, 0.0)
            letters.append(
                DeadLetter(
                    message_id=message.message_id,
                    redis_id=raw_id.decode(),
                    queue=name,
                    actor=message.actor_name,
                    died_at=datetime.fromtimestamp(score / 1000, UTC),
                    error=_last_error(message.message_id),
                    message=message,
                )
            )

    letters.sort(key=lambda letter: letter.died_at)
    return letters


def _last_run(message_id: str) -> JobRun | None:
    """Return the message's latest recorded attempt.

    The dead-letter hash holds the message as it was last enqueued, without
    its error or final attempt number, so both come from run history.
    """
    return (
        JobRun.select(JobRun.attempt, JobRun.error_type, JobRun.error)
        .where(JobRun.message_id == message_id)
        .order_by(JobRun.attempt.desc())
        .first()
    )


def _last_error(message_id: str) -> str:
    run = _last_run(message_id)
    if run is None or not run.error_type:
        return ""

    return f"{run.error_type}: {run.error}"


def requeue(broker: RedisBroker, letters: list[DeadLetter]) -> list[str]:
    """Move ``letters`` back to their queues with a fresh retry budget.

    Each message keeps its id, so run history shows the new attempts under
    the same message.  Returns the ids moved; a letter that another
    operator requeued first is left out.
    """
    moved = []
    for letter in letters:
        zkey = f"{broker.namespace}:{xq_name(letter.queue)}"
        removed = broker.client.hdel(f"{zkey}.msgs", letter.redis_id)
        broker.client.zrem(zkey, letter.redis_id)
        if not removed:
            continue

        options = {
            key: value
            for key, value in letter.message.options.items()
            if key not in ("traceback", "eta", "requeue_timestamp", "redis_message_id")
        }
        # The attempt counter keeps counting, so run history keeps one row
        # per attempt; the budget is raised instead of reset.
        last = _last_run(letter.message_id)
        attempt = last.attempt + 1 if last is not None else options.get("retries", 0)
        options["retries"] = attempt
        options["max_retries"] = attempt + _actor_max_retries(broker, letter.actor)
        broker.enqueue(letter.message.copy(queue_name=letter.queue, options=options))
        logger.info(
            "Requeued dead message %r of actor %r.", letter.message_id, letter.actor
        )
        moved.append(letter.message_id)

    return moved


def _actor_max_retries(broker: dramatiq.Broker, actor_name: str) -> int:
    default = next(
        (m.max_retries for m in broker.middleware if isinstance(m, Retries)), 20
    )
    try:
        actor = broker.get_actor(actor_name)
    except dramatiq.ActorNotFound:
        return default

    return int(actor.options.get("max_retries", default))


def find_dead_letter(broker: RedisBroker, message_id: str) -> DeadLetter:
    """Return the dead letter with ``message_id``.

    Raises:
      NotFound: No dead-letter queue holds that id.
    """
    for letter in dead_letters(broker):
        if letter.message_id == message_id:
            return letter

    raise NotFound("dead letter", message_id, "List them with: wallie-cli dlq list")
