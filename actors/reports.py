"""weeklyReport: one user's report on the past week, sent Monday 09:00 their local time."""

from __future__ import annotations

import dramatiq

from wallie.reports.weekly import queue_weekly_report

from .outbox import deliver_outbox


@dramatiq.actor(queue_name="reports", max_retries=5, min_backoff=30_000, time_limit=300_000)
def weekly_report(user_id: int, week: str) -> str:
    """Queue and deliver the report sent in ISO week ``week`` (on the week before it), once."""
    item = queue_weekly_report(user_id, week)
    if item is None:
        return "empty"

    if item.status == "pending":
        deliver_outbox.send(item.id)

    return item.status
