"""dailySummary: one user's morning summary mail, sent at 08:00 their local time."""

from __future__ import annotations

from datetime import date

import dramatiq

from wallie.reports.daily import queue_daily_summary

from .outbox import deliver_outbox


@dramatiq.actor(queue_name="reports", max_retries=5, min_backoff=30_000, time_limit=300_000)
def daily_summary(user_id: int, local_date: str) -> str:
    """Queue and deliver the summary of ``user_id`` for ``local_date`` (ISO), once.

    ``localTimeTick`` sends this at the user's 08:00; the outbox key
    ``daily-summary:{user_id}:{local_date}`` keeps retries and repeats from
    sending a second mail.
    """
    item = queue_daily_summary(user_id, date.fromisoformat(local_date))
    if item is None:
        return "empty"

    if item.status == "pending":
        deliver_outbox.send(item.id)

    return item.status
