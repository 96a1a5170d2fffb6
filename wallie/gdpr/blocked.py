"""Whether work queued for a user must be skipped because the user was deleted."""

from __future__ import annotations

from datetime import UTC, datetime

from ..db.models import DeletionRequest, User


def blocking_deletion(user_id: int, enqueued_at: datetime | None) -> DeletionRequest | None:
    """Return the account deletion that rules out a job for ``user_id``, or None.

    A job is ruled out while the account's deletion is unfinished, and after
    it finished when the job was queued before the end or the user row is
    gone.  A job queued after the end for a user row that exists again runs:
    SQLite can give a deleted user's id to a new account.

    Parameters:
      user_id: The job's ``user_id`` argument.
      enqueued_at: When the job's message was created, or None if unknown.
    """
    request = (
        DeletionRequest.select()
        .where((DeletionRequest.scope == "user") & (DeletionRequest.user_id == user_id))
        .order_by(DeletionRequest.id.desc())
        .first()
    )
    if request is None:
        return None

    if request.status != "done" or request.finished_at is None:
        return request

    if enqueued_at is None or enqueued_at <= request.finished_at:
        return request

    if not User.select().where(User.id == user_id).exists():
        return request

    return None


def from_millis(timestamp_ms: int | None) -> datetime | None:
    """Return a Dramatiq message timestamp (milliseconds since the epoch) as UTC."""
    if timestamp_ms is None:
        return None

    return datetime.fromtimestamp(timestamp_ms / 1000, UTC)
