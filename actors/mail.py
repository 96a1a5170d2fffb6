"""gmailSync, gmailSyncSingleUser, outlookSync and outlookSyncMailbox.

The periodic actors send one job per active mailbox every 15 minutes, spread
over a few minutes, and the per-mailbox actors sync one mailbox. The job logic
(lock, skip, retry after a rate limit, reconnect notice, analysis) is in
:mod:`wallie.mail.jobs`.
"""

from __future__ import annotations

import dramatiq
from periodiq import cron

from wallie.mail.jobs import (
    PERMANENT_ERRORS,
    SYNC_TIME_LIMIT_MS,
    plan_fan_out,
    run_sync_job,
)
from wallie.settings import get_settings

#: Retries of one mailbox job after a rate limit or a provider outage.
SYNC_MAX_RETRIES = 5


@dramatiq.actor(queue_name="mail", max_retries=0, periodic=cron("*/15 * * * *"))
def gmail_sync() -> None:
    """Send a ``gmail_sync_single_user`` job for every active Gmail mailbox."""
    for mailbox_id, delay in plan_fan_out("gmail", get_settings()):
        gmail_sync_single_user.send_with_options(args=(mailbox_id,), delay=delay)


@dramatiq.actor(
    queue_name="mail",
    max_retries=SYNC_MAX_RETRIES,
    time_limit=SYNC_TIME_LIMIT_MS,
    throws=PERMANENT_ERRORS,
)
def gmail_sync_single_user(mailbox_id: int) -> None:
    """Sync Gmail mailbox ``mailbox_id`` into storage."""
    run_sync_job("gmail", mailbox_id, get_settings(), dramatiq.get_broker())


@dramatiq.actor(queue_name="mail", max_retries=0, periodic=cron("*/15 * * * *"))
def outlook_sync() -> None:
    """Send an ``outlook_sync_mailbox`` job for every active Outlook mailbox."""
    for mailbox_id, delay in plan_fan_out("outlook", get_settings()):
        outlook_sync_mailbox.send_with_options(args=(mailbox_id,), delay=delay)


@dramatiq.actor(
    queue_name="mail",
    max_retries=SYNC_MAX_RETRIES,
    time_limit=SYNC_TIME_LIMIT_MS,
    throws=PERMANENT_ERRORS,
)
def outlook_sync_mailbox(mailbox_id: int) -> None:
    """Sync Outlook mailbox ``mailbox_id`` into storage."""
    run_sync_job("outlook", mailbox_id, get_settings(), dramatiq.get_broker())
