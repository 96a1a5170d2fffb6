"""Send an actor once per target, in paced batches, resumable after a stop or a crash.

Each batch is enqueued, then the cursor (the key of the batch's last
target) and the sent count are committed to the
:class:`~wallie.db.models.Backfill` row.  What a crash between the two can
cost depends on the broker:

- Redis: the batch's messages and its target keys go into the backfill's
  sent set in one transaction (see :mod:`.sender`), and a resumed run drops
  targets already in the set, so no target is sent twice.
- In-process broker (embedded default): each batch is processed before the
  cursor is committed, so a crash re-sends at most that one batch.

Message ids are derived from the backfill id and the target key, so run
history shows one row per target even if a message is sent again.
"""

from __future__ import annotations

import inspect
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker

from ..broker import run_embedded
from ..db.fields import utcnow
from ..db.models import AuditLog, Backfill
from ..errors import InvalidArguments, NotFound
from ..logging import get_logger
from .sender import already_sent, enqueue_batch, sent_set_key
from .targets import Filters, check_filters, count_targets, iter_batches, target_kind

logger = get_logger(__name__)

#: Targets per batch unless the command sets another size.
DEFAULT_BATCH_SIZE = 500

#: Namespace of the message ids derived from a backfill and a target.
MESSAGE_ID_NAMESPACE = uuid.UUID("5d1f3c8e-9a53-4c3e-9b8e-3a7f0c2d4b61")

#: Statuses of a backfill: ``running``, ``paused`` (stopped, resumable), ``done``.
STATUSES = ("running", "paused", "done")


@dataclass(frozen=True)
class BackfillPlan:
    """An actor, its target kind and filters, checked and ready to send."""

    actor: dramatiq.Actor[Any, Any]
    kind: str
    filters: Filters
    total: int


def plan_backfill(actor: dramatiq.Actor[Any, Any], filters: Filters) -> BackfillPlan:
    """Check that ``actor`` can be backfilled with ``filters`` and count the targets.

    Raises:
      InvalidArguments: The actor's signature or the filters do not fit.
    """
    kind = target_kind(actor, filters.arguments)
    try:
        check_filters(kind, filters)
    except ValueError as error:
        raise InvalidArguments(actor.actor_name, str(error)) from None

    return BackfillPlan(actor, kind, filters, count_targets(kind, filters))


def create_backfill(plan: BackfillPlan, *, rate_per_s: float | None, requested_by: str) -> Backfill:
    """Record a new backfill and its start in the audit log."""
    database = Backfill._meta.database
    with database.atomic():
        backfill = Backfill.create(
            actor=plan.actor.actor_name,
            user=plan.filters.user_id,
            filters=plan.filters.to_json(),
            target_kind=plan.kind,
            total=plan.total,
            rate_per_s=rate_per_s,
            requested_by=requested_by,
        )
        _audit(backfill, "backfill.started")

    return backfill


def get_backfill(backfill_id: int) -> Backfill:
    """Return backfill ``backfill_id``.

    Raises:
      NotFound: No backfill has this id.
    """
    backfill = Backfill.get_or_none(Backfill.id == backfill_id)
    if backfill is None:
        raise NotFound("backfill", backfill_id, "The id is printed when a backfill starts.")

    return backfill


def _audit(backfill: Backfill, action: str) -> None:
    AuditLog.create(
        action=action,
        operator=backfill.requested_by,
        user_id=backfill.user_id,
        target=f"backfill:{backfill.id}",
        details={
            "backfill_id": backfill.id,
            "actor": backfill.actor,
            "filters": backfill.filters,
            "total": backfill.total,
            "sent": backfill.sent,
            "status": backfill.status,
        },
    )


def message_id_for(backfill_id: int, key_text: str) -> str:
    """Return the message id of one target of one backfill; the same every time."""
    return str(uuid.uuid5(MESSAGE_ID_NAMESPACE, f"{backfill_id}:{key_text}"))


class Pacer:
    """Hold batches back so that message ``i`` is sent no earlier than ``start + i / rate``.

    Any window of ``t`` seconds then contains at most ``rate * t`` messages
    plus one batch.  ``rate_per_s=None`` sends as fast as possible.
    """

    def __init__(
        self,
        rate_per_s: float | None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate_per_s is not None and rate_per_s <= 0:
            raise ValueError(f"The rate must be more than 0 messages a second (got {rate_per_s}).")

        self.rate_per_s = rate_per_s
        self.clock = clock
        self.sleep = sleep
        self.start: float | None = None
        self.count = 0

    def wait(self, size: int) -> None:
        """Wait until a batch of ``size`` messages may go, then count it as sent."""
        if self.start is None:
            self.start = self.clock()

        if self.rate_per_s is not None and size:
            ready_at = self.start + (self.count + size - 1) / self.rate_per_s
            delay = ready_at - self.clock()
            if delay > 0:
                self.sleep(delay)

        self.count += size


def run_backfill(
    broker: dramatiq.Broker,
    backfill: Backfill,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    rate_per_s: float | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    on_progress: Callable[[int], None] = lambda count: None,
) -> Backfill:
    """Send the remaining targets of ``backfill`` and return it with its new status.

    Parameters:
      broker: The broker to enqueue on; the in-process broker also runs each batch.
      backfill: The backfill to start or resume.
      batch_size: Targets per batch and per transaction.
      rate_per_s: Maximum messages a second, or None for no limit.
      should_stop: Checked between batches; True pauses the backfill.
      on_progress: Called with the number of targets handled after each batch.

    Raises:
      InvalidArguments: The backfill is done, or its actor is not declared.
    """
    if backfill.status == "done":
        raise InvalidArguments(backfill.actor, f"Backfill {backfill.id} is already done.")

    try:
        actor = broker.get_actor(backfill.actor)
    except dramatiq.ActorNotFound:
        raise InvalidArguments(backfill.actor, f"Actor {backfill.actor!r} is not declared.") from None

    filters = Filters.from_json(backfill.filters)
    parameters = set(inspect.signature(actor.fn).parameters)
    after = json.loads(backfill.cursor) if backfill.cursor else None
    client = broker.client if isinstance(broker, RedisBroker) else None
    pacer = Pacer(rate_per_s)
    Backfill.update(status="running", updated_at=utcnow()).where(Backfill.id == backfill.id).execute()
    logger.info("Started backfill %d of %s after cursor %s.", backfill.id, backfill.actor, backfill.cursor or "-")
    for batch in iter_batches(backfill.target_kind, filters, parameters, after, batch_size):
        if should_stop():
            return _pause(backfill)

        keys = [target.key_text for target in batch]
        done = already_sent(client, backfill.id, keys) if client is not None else set()
        todo = [(key, target) for key, target in zip(keys, batch, strict=True) if key not in done]
        pacer.wait(len(todo))
        messages = [_message(actor, backfill.id, key, target.kwargs) for key, target in todo]
        enqueue_batch(broker, messages, backfill_id=backfill.id, keys=[key for key, _ in todo])
        if client is None:
            run_embedded(broker)

        # Targets found in the sent set went out before a crash that lost
        # the cursor, so they count as sent now.
        _advance(backfill, len(batch), keys[-1])
        on_progress(len(batch))

    return _finish(backfill, client)


def _message(
    actor: dramatiq.Actor[Any, Any], backfill_id: int, key_text: str, kwargs: dict[str, Any]
) -> dramatiq.Message[Any]:
    return dramatiq.Message(
        queue_name=actor.queue_name,
        actor_name=actor.actor_name,
        args=(),
        kwargs=kwargs,
        options={"backfill_id": backfill_id},
        message_id=message_id_for(backfill_id, key_text),
    )


def _advance(backfill: Backfill, sent: int, cursor: str) -> None:
    backfill.sent += sent
    backfill.cursor = cursor
    backfill.updated_at = utcnow()
    Backfill.update(sent=Backfill.sent + sent, cursor=cursor, updated_at=backfill.updated_at).where(
        Backfill.id == backfill.id
    ).execute()


def _pause(backfill: Backfill) -> Backfill:
    backfill.status = "paused"
    backfill.save()
    _audit(backfill, "backfill.paused")
    logger.info("Paused backfill %d after %d of %d targets.", backfill.id, backfill.sent, backfill.total)
    return backfill


def _finish(backfill: Backfill, client: redis.Redis | None) -> Backfill:
    backfill.status = "done"
    backfill.finished_at = utcnow()
    backfill.save()
    _audit(backfill, "backfill.finished")
    if client is not None:
        client.delete(sent_set_key(backfill.id))

    logger.info("Finished backfill %d: %d messages sent.", backfill.id, backfill.sent)
    return backfill
