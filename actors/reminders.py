"""reminderCheck: notify every due reminder once, hourly, however late."""

from __future__ import annotations

import dramatiq
from periodiq import cron

from wallie.reports.reminders import notify_due_reminders

from .outbox import deliver_outbox


@dramatiq.actor(queue_name="reminders", max_retries=5, min_backoff=10_000, periodic=cron("0 * * * *"))
def reminder_check() -> int:
    """Notify (in the app and by mail) every due reminder not yet notified.

    Returns the number of outbox items queued.
    """
    item_ids = notify_due_reminders()
    for item_id in item_ids:
        deliver_outbox.send(item_id)

    return len(item_ids)
