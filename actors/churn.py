"""clientChurnDetection: check-in tasks for clients going quiet, 07:00 local time."""

from __future__ import annotations

import dramatiq

from wallie.reports.churn import record_churn_risks
from wallie.settings import get_settings

from .outbox import deliver_outbox


@dramatiq.actor(queue_name="reports", max_retries=5, min_backoff=30_000, time_limit=300_000)
def client_churn_detection(user_id: int, local_date: str) -> int:
    """Create a task and a notification for each new churn risk of ``user_id``.

    ``local_date`` names the day of the run (it makes the message unique
    per day); risks are judged at the time the job runs.  Returns the
    number of new risk episodes.
    """
    item_ids = record_churn_risks(user_id, get_settings().churn_inactive_days)
    for item_id in item_ids:
        deliver_outbox.send(item_id)

    return len(item_ids)
