"""Skip queued messages for users whose account is being or was deleted."""

from __future__ import annotations

from typing import Any

import dramatiq
from dramatiq.middleware import Middleware, SkipMessage

from ..gdpr.blocked import blocking_deletion, from_millis
from ..logging import get_logger
from .run_history import bound_arguments, set_outcome


def bound_user_id(broker: dramatiq.Broker, message: Any) -> int | None:
    """Return the ``user_id`` argument of ``message``, or None if it has none."""
    value = bound_arguments(broker, message).get("user_id")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class DeletedUsers(Middleware):
    """Skip a message whose ``user_id`` argument names a deleted account.

    The run is recorded as ``skipped`` with the deletion request as reason.
    It costs one indexed query per message that has a ``user_id``.
    """

    def __init__(self) -> None:
        self.logger = get_logger(__name__, type(self).__name__)

    def before_process_message(self, broker: dramatiq.Broker, message: Any) -> None:
        user_id = bound_user_id(broker, message)
        if user_id is None:
            return

        request = blocking_deletion(user_id, from_millis(message.message_timestamp))
        if request is None:
            return

        reason = f"User {user_id} is deleted (deletion request {request.id}, {request.status})."
        set_outcome(message, "skipped", reason)
        self.logger.info("Skipped message %r: %s", message.message_id, reason)
        raise SkipMessage(reason)
