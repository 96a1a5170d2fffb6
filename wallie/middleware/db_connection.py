"""Give each message a healthy database connection."""

from __future__ import annotations

import threading
import time
from typing import Any

import dramatiq
import peewee
from dramatiq.middleware import Middleware

from ..db.models import database_proxy
from ..logging import get_logger

#: Idle time after which a PostgreSQL connection goes back to the pool before
#: the next message, in milliseconds.  Taking it out again runs the pool's
#: liveness check (``SELECT 1``), so a connection broken by a database
#: restart while the worker was idle is replaced before a message uses it.
DEFAULT_CHECK_AFTER_IDLE_MS = 1_000


class DatabaseConnection(Middleware):
    """Keep a database connection open for each worker thread.

    The thread's connection stays open from one message to the next.  Taking
    a connection out of the pool costs a liveness round trip, and opening a
    SQLite file costs its pragmas: either takes longer than a no-op message
    runs.  After every message a transaction the actor left
    open is rolled back.

    With PostgreSQL the connection goes back to the pool when an actor
    raises (a broken connection is then dropped and the retry gets a fresh
    one) and when it was idle for more than ``check_after_idle_ms``
    milliseconds (the pool checks it before handing it out again).

    Note:
      A database restart while a thread is between two messages less than
      ``check_after_idle_ms`` apart fails that thread's next message once;
      Retries runs it again on a fresh connection.
    """

    def __init__(
        self, *, check_after_idle_ms: int = DEFAULT_CHECK_AFTER_IDLE_MS
    ) -> None:
        if check_after_idle_ms < 0:
            raise ValueError(
                f"check_after_idle_ms must be 0 or more (got {check_after_idle_ms})."
            )

        self.logger = get_logger(__name__, type(self).__name__)
        self.check_after_idle_ms = check_after_idle_ms
        self._local = threading.local()

    def before_process_message(self, broker: dramatiq.Broker, message: Any) -> None:
        database = database_proxy.obj
        if database is None:
            return

        if _is_pooled(database) and not database.is_closed() and self._idle_too_long():
            database.close()

        database.connect(reuse_if_open=True)

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: Any,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        self._release(close=exception is not None)

    def after_skip_message(self, broker: dramatiq.Broker, message: Any) -> None:
        self._release(close=False)

    def _idle_too_long(self) -> bool:
        last_used = getattr(self._local, "last_used", None)
        if last_used is None:
            return False

        return (time.monotonic() - last_used) * 1000 > self.check_after_idle_ms

    def _release(self, *, close: bool) -> None:
        database = database_proxy.obj
        if database is None or database.is_closed():
            return

        if database.in_transaction():
            self.logger.warning("Rolling back a transaction left open by an actor.")
            database.rollback()

        self._local.last_used = time.monotonic()
        if close and _is_pooled(database):
            database.close()


def _is_pooled(database: peewee.Database) -> bool:
    return not isinstance(database, peewee.SqliteDatabase)
