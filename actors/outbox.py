"""deliverOutbox and outboxSweep: perform queued mail, notifications and webhooks."""

from __future__ import annotations

import dramatiq
from periodiq import cron

from wallie.notify import deliver, pending_ids, release_stuck
from wallie.settings import get_settings

#: Items sent per sweep; the rest wait for the next minute.
SWEEP_BATCH = 500


@dramatiq.actor(queue_name="outbox", max_retries=8, min_backoff=5_000, max_backoff=600_000)
def deliver_outbox(item_id: int) -> str:
    """Perform outbox item ``item_id`` once; a failure retries with backoff."""
    return deliver(item_id, get_settings()).status


@dramatiq.actor(queue_name="outbox", max_retries=0, periodic=cron("* * * * *"))
def outbox_sweep() -> int:
    """Send a delivery message for every pending item, after freeing stuck ones.

    This catches items whose delivery message was lost (a worker killed
    between the outbox write and the send).
    """
    release_stuck()
    ids = pending_ids(SWEEP_BATCH)
    for item_id in ids:
        deliver_outbox.send(item_id)

    return len(ids)
