"""localTimeTick: start the per-user jobs whose local time has come, every 15 minutes."""

from __future__ import annotations

from typing import Any

import dramatiq
from periodiq import cron

from wallie.db.fields import utcnow
from wallie.schedule.local import claim_due_runs, prune_local_runs

from .churn import client_churn_detection
from .reports import weekly_report
from .summary import daily_summary

#: The actor of each per-user job of :data:`wallie.schedule.local.LOCAL_JOBS`.
JOB_ACTORS: dict[str, dramatiq.Actor[Any, Any]] = {
    "client_churn_detection": client_churn_detection,
    "daily_summary": daily_summary,
    "weekly_report": weekly_report,
}


@dramatiq.actor(queue_name="schedule", max_retries=3, min_backoff=10_000, periodic=cron("*/15 * * * *"))
def local_time_tick() -> int:
    """Claim the due per-user runs and send one message per run.

    The tick runs on the UTC quarter hours, which land on every local
    quarter hour in use (``+05:30``, ``+05:45`` and ``+10:30`` included).
    Returns the number of messages sent.
    """
    # NOTE: a run claimed here whose send fails is not retried for that
    # period; the claim is made first so two ticks never send it twice.
    now = utcnow()
    claims = claim_due_runs(now)
    for claim in claims:
        JOB_ACTORS[claim.job].send(claim.user_id, claim.period)

    if now.hour == 0 and now.minute < 15:
        prune_local_runs(now)

    return len(claims)
