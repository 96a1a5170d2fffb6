"""safetyLimiter: cost notices, runaway pauses and lifting passed pauses, every 5 minutes."""

from __future__ import annotations

import dramatiq
from periodiq import cron

from wallie.safety import run_safety_checks

from .outbox import deliver_outbox


@dramatiq.actor(
    queue_name="maintenance", max_retries=2, min_backoff=30_000, periodic=cron("*/5 * * * *")
)
def safety_limiter() -> dict[str, int]:
    """Warn users near their cost ceiling, pause runaways and lift passed pauses.

    Returns the counts of users warned, paused and resumed.
    """
    report = run_safety_checks()
    for item_id in report.outbox_item_ids:
        deliver_outbox.send(item_id)

    return {
        "warned": report.warned_users,
        "paused": len(report.paused_user_ids),
        "resumed": len(report.resumed_user_ids),
    }
