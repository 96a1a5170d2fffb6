"""Side effects through the outbox: mail, in-app notifications, webhooks."""

from __future__ import annotations

from .outbox import (
    Delivery,
    add_email,
    add_notification,
    add_webhook,
    deliver,
    pending_ids,
    release_stuck,
)
from .transports import MailContent

__all__ = [
    "Delivery",
    "MailContent",
    "add_email",
    "add_notification",
    "add_webhook",
    "deliver",
    "pending_ids",
    "release_stuck",
]
