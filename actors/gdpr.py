"""knowledgeDelete: erase an account, a contact or an import for a GDPR request."""

from __future__ import annotations

import dramatiq

from wallie.gdpr import run_deletion
from wallie.gdpr.deletion import RUN_TIME_LIMIT_MS
from wallie.settings import get_settings

from .outbox import deliver_outbox


# The argument is the request id, not ``user_id``, so the deleted-user check
# never skips the deletion itself.
@dramatiq.actor(
    queue_name="gdpr",
    max_retries=10,
    min_backoff=10_000,
    max_backoff=600_000,
    time_limit=RUN_TIME_LIMIT_MS,
)
def knowledge_delete(request_id: int) -> int:
    """Run deletion request ``request_id`` to the end and mail its receipt.

    A failed or interrupted run is retried and resumes after the last
    committed batch.  Returns the number of rows deleted.
    """
    result = run_deletion(request_id, get_settings())
    if result.notice_id is not None:
        deliver_outbox.send(result.notice_id)

    return int(result.receipt["total_rows"])
