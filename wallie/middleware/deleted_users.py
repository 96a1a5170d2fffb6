"""Skip queued messages for users whose account is being or was deleted."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import dramatiq
from dramatiq.middleware import Middleware, SkipMessage

from ..db.models import DeletionRequest
from ..gdpr.blocked import blocking_deletion, from_millis
from ..logging import get_logger
from .run_history import bound_arguments, set_outcome

#: How long a worker reuses the list of users with an account deletion
#: request before it reads the list again, in milliseconds.
DEFAULT_REFRESH_INTERVAL_MS = 1_000


def bound_user_id(broker: dramatiq.Broker, message: Any) -> int | None:
    """Return the ``user_id`` argument of ``message``, or None if it has none."""
    value = bound_arguments(broker, message).get("user_id")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class DeletionRequestCache:
    """The ids of users who have an account deletion request, in any status.

    The list is read again from the ``deletion_request`` table once it is
    older than ``refresh_interval_ms`` milliseconds, with one query for every
    thread of the process.  Requests are never removed from the list while
    their row exists, because a finished deletion still rules out messages
    queued before it ended.

    Parameters:
      refresh_interval_ms: Age after which the list is read again, in
        milliseconds.
      clock: Monotonic clock in seconds (tests pass their own).
    """

    def __init__(
        self, refresh_interval_ms: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.refresh_interval_ms = refresh_interval_ms
        self._clock = clock
        self._user_ids: frozenset[int] = frozenset()
        self._read_at: float | None = None
        self._lock = threading.Lock()

    def has_request(self, user_id: int) -> bool:
        """Return True if ``user_id`` had a deletion request when the list was read."""
        if self._is_stale():
            with self._lock:
                if self._is_stale():
                    self._read()

        return user_id in self._user_ids

    def _is_stale(self) -> bool:
        if self._read_at is None:
            return True

        return (self._clock() - self._read_at) * 1000 >= self.refresh_interval_ms

    def _read(self) -> None:
        read_at = self._clock()
        query = (
            DeletionRequest.select(DeletionRequest.user_id)
            .where(DeletionRequest.scope == "user")
            .distinct()
        )
        self._user_ids = frozenset(request.user_id for request in query)
        self._read_at = read_at


class DeletedUsers(Middleware):
    """Skip a message whose ``user_id`` argument names a deleted account.

    The run is recorded as ``skipped`` with the deletion request as reason.
    A worker checks a user against a list of users with deletion requests
    (see :class:`DeletionRequestCache`) and queries the user's latest
    request only for a user on that list.  With ``refresh_interval_ms=0``
    every message with a ``user_id`` queries the request table.

    Parameters:
      refresh_interval_ms: Age after which the list of users with deletion
        requests is read again, in milliseconds.
      clock: Monotonic clock in seconds, for the list's age.

    Note:
      A deletion requested while a worker's list is fresh is seen by that
      worker at most ``refresh_interval_ms`` milliseconds later.  Until then
      the user's messages still run, like a message that was already
      running when the deletion was requested.
    """

    def __init__(
        self,
        *,
        refresh_interval_ms: int = DEFAULT_REFRESH_INTERVAL_MS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if refresh_interval_ms < 0:
            raise ValueError(
                f"refresh_interval_ms must be 0 or more (got {refresh_interval_ms})."
            )

        self.logger = get_logger(__name__, type(self).__name__)
        self.requests: DeletionRequestCache | None = None
        if refresh_interval_ms > 0:
            self.requests = DeletionRequestCache(refresh_interval_ms, clock)

    def before_process_message(self, broker: dramatiq.Broker, message: Any) -> None:
        user_id = bound_user_id(broker, message)
        if user_id is None:
            return

        if self.requests is not None and not self.requests.has_request(user_id):
            return

        request = blocking_deletion(user_id, from_millis(message.message_timestamp))
        if request is None:
            return

        reason = f"User {user_id} is deleted (deletion request {request.id}, {request.status})."
        set_outcome(message, "skipped", reason)
        self.logger.info("Skipped message %r: %s", message.message_id, reason)
        raise SkipMessage(reason)
