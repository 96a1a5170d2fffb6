"""The outbox: side effects written first, performed once.

Code that wants to send a mail, show an in-app notification or call a
webhook writes an :class:`~wallie.db.models.OutboxItem` with an
idempotency key that names the event (``hot-lead:42:7:2026-12-04``).  The
key is unique, so a retried job that writes the same item again finds the
first one.  :func:`deliver` then performs the item once: it claims the item
with a conditional update, so two workers never both send it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from ..db.fields import utcnow
from ..db.models import Notification, OutboxItem, User
from ..logging import get_logger
from ..settings import Settings
from .transports import MailContent, deliver_mail, post_webhook

logger = get_logger(__name__)

#: Outbox statuses: ``pending`` waits, ``sending`` is claimed by a worker,
#: ``sent`` is done, ``failed`` gave up after :data:`MAX_ATTEMPTS`.
STATUSES = ("pending", "sending", "sent", "failed")

#: Attempts before an item is marked failed and left for an operator.
MAX_ATTEMPTS = 8


@dataclass(frozen=True)
class Delivery:
    """What :func:`deliver` did with one item."""

    item_id: int
    status: str
    detail: str = ""


def _create(user: User | None, key: str, kind: str, **fields: Any) -> OutboxItem:
    """Insert an outbox item unless one with ``key`` exists; return the stored one."""
    if len(key) > 300:
        key = f"{key[:200]}#{hashlib.sha256(key.encode()).hexdigest()}"

    database = OutboxItem._meta.database
    with database.atomic():
        OutboxItem.insert(
            user=user, idempotency_key=key, kind=kind, created_at=utcnow(), **fields
        ).on_conflict_ignore().execute()

    return OutboxItem.get(OutboxItem.idempotency_key == key)


def add_email(user: User | None, key: str, recipient: str, content: MailContent) -> OutboxItem:
    """Queue a mail to ``recipient`` under ``key``; a second call with ``key`` is a no-op."""
    payload = {"text": content.text, "html": content.html, "headers": content.headers}
    return _create(
        user, key, "email", recipient=recipient, subject=content.subject, payload=payload
    )


def add_notification(
    user: User, key: str, kind: str, title: str, body: str, data: dict[str, Any] | None = None
) -> OutboxItem:
    """Queue an in-app notification for ``user`` under ``key``."""
    payload = {"kind": kind, "body": body, "data": data or {}}
    return _create(user, key, "notification", subject=title, payload=payload)


def add_webhook(user: User | None, key: str, url: str, event: dict[str, Any]) -> OutboxItem:
    """Queue a signed POST of ``event`` to ``url`` under ``key``."""
    return _create(user, key, "webhook", recipient=url, payload={"event": event})


def _claim(item_id: int) -> bool:
    """Move the item from pending to sending; False if another worker has it."""
    claimed = (
        OutboxItem.update(status="sending", attempts=OutboxItem.attempts + 1)
        .where((OutboxItem.id == item_id) & (OutboxItem.status == "pending"))
        .execute()
    )
    return claimed == 1


def deliver(item_id: int, settings: Settings) -> Delivery:
    """Perform outbox item ``item_id`` once.

    A failure puts the item back to pending and re-raises, so the calling
    actor retries with backoff; after :data:`MAX_ATTEMPTS` it is marked
    failed instead.

    Note:
      A worker killed between the send and the status update leaves the
      item in ``sending``; :func:`release_stuck` returns such items to
      pending, so that one mail may be sent twice.  Mail carries the key
      as its ``Message-ID``, so mail clients show such a duplicate once.
    """
    if not _claim(item_id):
        status = OutboxItem.get_by_id(item_id).status
        return Delivery(item_id, status, "Already claimed or done.")

    item = OutboxItem.get_by_id(item_id)
    try:
        detail = _perform(item, settings)
    except Exception as error:
        _record_failure(item, error)
        raise

    OutboxItem.update(status="sent", sent_at=utcnow(), last_error="").where(
        OutboxItem.id == item_id
    ).execute()
    if item.user_id is None:
        logger.info("Delivered outbox item %r (%s), which belongs to no user.", item_id, item.kind)
    else:
        logger.info("Delivered outbox item %r (%s) for user %r.", item_id, item.kind, item.user_id)
    return Delivery(item_id, "sent", detail)


def _perform(item: OutboxItem, settings: Settings) -> str:
    if item.kind == "email":
        content = MailContent(
            subject=item.subject,
            text=item.payload.get("text", ""),
            html=item.payload.get("html"),
            headers=item.payload.get("headers") or {},
        )
        return deliver_mail(settings, item.idempotency_key, item.recipient, content)

    if item.kind == "notification":
        Notification.create(
            user=item.user_id,
            kind=item.payload.get("kind", ""),
            title=item.subject,
            body=item.payload.get("body", ""),
            data=item.payload.get("data") or {},
        )
        return "Stored an in-app notification."

    if item.kind == "webhook":
        return post_webhook(settings, item.idempotency_key, item.recipient, item.payload["event"])

    raise ValueError(f"Outbox item {item.id} has unknown kind {item.kind!r}.")


def _record_failure(item: OutboxItem, error: Exception) -> None:
    status = "failed" if item.attempts >= MAX_ATTEMPTS else "pending"
    OutboxItem.update(status=status, last_error=f"{type(error).__name__}: {error}"[:2000]).where(
        OutboxItem.id == item.id
    ).execute()
    level = logger.warning if status == "failed" else logger.info
    level(
        "Delivery of outbox item %r failed on attempt %d (%s); it is now %s.",
        item.id,
        item.attempts,
        type(error).__name__,
        status,
    )


def pending_ids(limit: int = 1000) -> list[int]:
    """Return the ids of items waiting to be delivered, oldest first."""
    query = (
        OutboxItem.select(OutboxItem.id)
        .where(OutboxItem.status == "pending")
        .order_by(OutboxItem.id)
        .limit(limit)
    )
    return [item.id for item in query]


def release_stuck(older_than_s: int = 900) -> int:
    """Return items stuck in ``sending`` longer than ``older_than_s`` seconds to pending.

    The age is measured from the item's creation, which over-estimates how
    long it has been sending; that only delays the release.
    """
    cutoff = utcnow().timestamp() - older_than_s
    stuck = [
        item.id
        for item in OutboxItem.select(OutboxItem.id, OutboxItem.created_at).where(
            OutboxItem.status == "sending"
        )
        if item.created_at.timestamp() < cutoff
    ]
    if not stuck:
        return 0

    return (
        OutboxItem.update(status="pending")
        .where(OutboxItem.id.in_(stuck) & (OutboxItem.status == "sending"))
        .execute()
    )

